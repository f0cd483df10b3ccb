// Building the page safely: every value from a run becomes a text node or an attribute,
// never HTML. Formatting of numbers, times and durations as `gitexp show` prints them.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

// A value as a cell: numbers to 6 significant digits, '-' for missing, like `gitexp show`.
export function fmt(value, digits = 6) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    return String(Number(value.toPrecision(digits)));
  }
  if (value === "NaN") return "nan";
  if (value === "Infinity") return "inf";
  if (value === "-Infinity") return "-inf";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

// No value to place on an axis: absent, or NaN and the infinities (JSON carries them as text).
export function isMissing(value) {
  return value === null || value === undefined || value === "NaN" || value === "Infinity" ||
    value === "-Infinity";
}

export function fmtTime(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (!isNumber(seconds)) return "-";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtSize(bytes) {
  if (!isNumber(bytes)) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let value = bytes;
  while (value >= 1000 && i < units.length - 1) { value /= 1000; i += 1; }
  return `${i ? value.toFixed(1) : value} ${units[i]}`;
}

export function badge(status) {
  const known = ["success", "failed", "interrupted", "running", "saved"];
  const cls = known.includes(status) ? status : "unknown";
  return h("span", { class: `badge status-${cls}`, title: status || "no status" },
    status || "-");
}

export function runHref(name) {
  return `#/run/${encodeURIComponent(name)}`;
}

// One `run` parameter per name: a name may hold ',' or '%' (git allows both in a ref).
export function compareHref(names) {
  return `#/compare?${new URLSearchParams(names.map((name) => ["run", name]))}`;
}

// decodeURIComponent that leaves a malformed escape ('%', '%ZZ') as it is instead of throwing.
export function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, 4000);
}

export function copyButton(text) {
  return h("button", {
    class: "small",
    type: "button",
    title: "Copy to the clipboard",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast("copied");
      } catch {
        toast("the browser refused the clipboard; select the text instead", "error");
      }
    },
  }, "copy");
}

// A table from headers and rows of cells (strings or nodes).
export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))))));
}

// Distinct colours for many series: golden-angle hues, two lightness levels.
export function color(i, alpha = 1) {
  const hue = (i * 137.508) % 360;
  const light = i % 2 ? 38 : 48;
  return `hsla(${hue.toFixed(1)}, 70%, ${light}%, ${alpha})`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
