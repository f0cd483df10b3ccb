// The runs table: filtered, sorted, grouped and paged by the server; this page only ever
// holds the rows near the scroll position, so 100,000 runs scroll like 100.

import { ApiError, get, onUpdate, post } from "./api.js";
import {
  badge, clear, compareHref, debounce, fmt, fmtDuration, fmtTime, h, isNumber, runHref, toast,
} from "./dom.js";
import { selection } from "./selection.js";

const ROW_H = 30;
const PAGE = 200;
const OVERSCAN = 20;
const STATE_KEY = "gitexp-table";
const DEFAULTS = {
  filter: "", sort: "", desc: false, columns: "", changed: true, group: "", collapsed: [],
  refs: false, history: true,
};
const FIXED = [
  { id: "select", label: "", width: 34 },
  { id: "name", label: "run", width: 250, sort: "name" },
  { id: "status", label: "status", width: 104, sort: "status" },
  { id: "created", label: "created", width: 172, sort: "created" },
  { id: "duration", label: "duration", width: 90, sort: "duration" },
  { id: "tags", label: "tags", width: 150 },
];

function loadState() {
  try {
    return { ...DEFAULTS, ...JSON.parse(sessionStorage.getItem(STATE_KEY) || "{}") };
  } catch {
    return { ...DEFAULTS };
  }
}

// A column as wide as its label or its widest value on the first page, within bounds.
function widths(columns, items) {
  const found = {};
  columns.forEach((col, i) => {
    let chars = col.label.length + 2;
    for (const item of items) {
      if (item.type === "row") chars = Math.max(chars, fmt(item.values[i]).length);
    }
    found[col.id] = Math.round(Math.min(240, Math.max(72, chars * 8.2 + 22)));
  });
  return found;
}

export function mount(container, route, app) {
  const state = loadState();
  if (route.params.has("filter")) state.filter = route.params.get("filter");
  let columns = [];
  let columnWidths = {};
  let showNote = false;
  let showTags = false;
  let count = 0;
  let pages = new Map(); // page index -> {items, key}
  let loading = new Set();
  let queryKey = "";
  let version = null;
  let lastSelected = null;

  const filterInput = h("input", {
    type: "search", class: "filter", value: state.filter, spellcheck: "false",
    placeholder: "filter, as in gitexp show --filter: acc > 0.9 and train.lr < 0.1",
    "aria-label": "filter",
  });
  const columnsInput = h("input", {
    type: "search", class: "columns", value: state.columns, spellcheck: "false",
    placeholder: "columns: train.* acc !seed", "aria-label": "columns",
  });
  const changedBox = h("input", { type: "checkbox", checked: state.changed });
  const refsBox = h("input", { type: "checkbox", checked: state.refs });
  const historyBox = h("input", { type: "checkbox", checked: state.history });
  const groupSelect = h("select", { "aria-label": "group by" });
  const errorBox = h("div", { class: "error", role: "alert", hidden: true });
  const countText = h("span", { class: "count" });
  const selectedText = h("span", { class: "selected" });
  const compareLink = h("a", { class: "button primary", href: "#/compare" }, "Compare");
  const clearButton = h("button", { type: "button", onclick: () => selection.clear() }, "Clear");
  const allButton = h("button", { type: "button", onclick: selectAll }, "Select all");
  const removeButton = app.info.write
    ? h("button", { type: "button", class: "danger", onclick: removeSelected }, "Remove…")
    : null;
  const head = h("div", { class: "grid-head", role: "row" });
  const body = h("div", { class: "grid-body", role: "rowgroup" });
  const grid = h("div", { class: "grid", role: "table", "aria-label": "runs" }, head, body);
  const scroller = h("div", { class: "grid-scroll" }, grid);

  container.append(h("section", { class: "runs-view" },
    h("form", {
      class: "toolbar",
      onsubmit: (e) => { e.preventDefault(); apply(); },
    },
    filterInput,
    columnsInput,
    h("label", {}, changedBox, " only changed"),
    h("label", {}, "group ", groupSelect),
    h("label", {}, historyBox, " history min/max"),
    h("label", {}, refsBox, " branches & tags"),
    h("button", { type: "submit" }, "Apply")),
    errorBox,
    h("div", { class: "actions" }, countText, selectedText, allButton, clearButton, compareLink,
      removeButton),
    scroller));

  function apply() {
    state.filter = filterInput.value.trim();
    state.columns = columnsInput.value.trim();
    state.changed = changedBox.checked;
    state.refs = refsBox.checked;
    state.history = historyBox.checked;
    state.group = groupSelect.value;
    reset();
  }
  for (const box of [changedBox, refsBox, historyBox]) box.addEventListener("change", apply);
  groupSelect.addEventListener("change", () => { state.collapsed = []; apply(); });
  columnsInput.addEventListener("input", debounce(apply, 500));

  function params(offset) {
    return {
      filter: state.filter, sort: state.sort, desc: state.desc ? 1 : 0, columns: state.columns,
      changed: state.changed ? 1 : 0, group: state.group, collapsed: state.collapsed,
      refs: state.refs ? 1 : 0, history: state.history ? 1 : 0, offset, limit: PAGE,
    };
  }

  function reset() {
    sessionStorage.setItem(STATE_KEY, JSON.stringify(state));
    pages = new Map();
    loading = new Set();
    queryKey = JSON.stringify(params(0));
    scroller.scrollTop = 0;
    load(0, true);
  }

  async function load(index, first = false) {
    const key = queryKey;
    loading.add(index);
    try {
      const page = await get("/api/runs", params(index * PAGE));
      if (key !== queryKey) return;
      errorBox.hidden = true;
      scroller.classList.remove("stale");
      version = page.version;
      pages.set(index, page.items);
      count = page.count;
      const ids = JSON.stringify(page.columns.map((c) => c.id));
      if (first || ids !== JSON.stringify(columns.map((c) => c.id))) {
        columns = page.columns;
        columnWidths = widths(columns, page.items);
        showNote = page.items.some((i) => i.note || i.message);
        showTags = page.items.some((i) => i.tags && Object.keys(i.tags).length);
        renderHead();
        renderGroupOptions();
      }
      const live = page.live ? `, ${page.live} in progress` : "";
      countText.textContent = state.filter
        ? `${page.matched.toLocaleString()} of ${page.total.toLocaleString()} runs match${live}`
        : `${page.total.toLocaleString()} runs${live}`;
      body.style.height = `${count * ROW_H}px`;
      render();
    } catch (error) {
      if (key !== queryKey) return;
      if (error instanceof ApiError && error.status === 400) {
        errorBox.textContent = error.message;
        errorBox.hidden = false;
        scroller.classList.add("stale");
      } else {
        toast(error.message, "error");
      }
    } finally {
      loading.delete(index);
    }
  }

  function fixedColumns() {
    const fixed = FIXED.filter((c) => c.id !== "tags" || showTags);
    if (showNote) fixed.push({ id: "note", label: "note", width: 180 });
    return fixed;
  }

  function allColumns() {
    return fixedColumns().concat(columns.map((c) => ({ ...c, width: columnWidths[c.id] || 90, sort: c.id })));
  }

  function renderHead() {
    const cols = allColumns();
    grid.style.width = `${cols.reduce((sum, c) => sum + c.width, 0)}px`;
    clear(head, cols.map((col) => {
      const sorted = col.sort && state.sort === col.sort;
      const cell = h("div", {
        class: `cell head ${col.kind || "fixed"}${sorted ? " sorted" : ""}`,
        style: { width: `${col.width}px` },
        title: col.kind ? `${col.kind === "history" ? "history" : col.path}: ${col.label}` : col.label,
        role: "columnheader",
        "aria-sort": sorted ? (state.desc ? "descending" : "ascending") : null,
      }, col.label, sorted ? (state.desc ? " ▼" : " ▲") : "");
      if (col.sort) {
        cell.classList.add("sortable");
        cell.addEventListener("click", () => {
          if (state.sort !== col.sort) { state.sort = col.sort; state.desc = false; }
          else if (!state.desc) state.desc = true;
          else { state.sort = ""; state.desc = false; }
          reset();
        });
      }
      return cell;
    }));
  }

  function renderGroupOptions() {
    const options = [["", "nothing"], ["experiment", "experiment (name prefix)"],
      ["status", "status"]];
    for (const col of columns) if (col.kind === "params") options.push([col.id, col.label]);
    if (state.group && !options.some(([v]) => v === state.group)) {
      options.push([state.group, state.group]);
    }
    clear(groupSelect, options.map(([value, label]) => h("option", { value }, label)));
    groupSelect.value = state.group;
  }

  function cellOf(col, item) {
    const style = { width: `${col.width}px` };
    switch (col.id) {
      case "select": {
        const box = h("input", {
          type: "checkbox", checked: selection.has(item.name), "aria-label": `select ${item.name}`,
        });
        box.addEventListener("click", (event) => selectRow(item, box.checked, event.shiftKey));
        return h("div", { class: "cell select", style }, box);
      }
      case "name":
        return h("div", { class: "cell name", style, title: item.name },
          item.kind === "branch" || item.kind === "tag"
            ? h("span", { class: "kind" }, item.kind) : null,
          h("a", { href: runHref(item.name) }, item.name),
          item.errors ? h("span", { class: "warn", title: Object.values(item.errors).join("\n") }, " ⚠") : null);
      case "status":
        return h("div", { class: "cell", style }, item.status ? badge(item.status) : "-");
      case "created":
        return h("div", { class: "cell", style, title: item.created || "" }, fmtTime(item.created));
      case "duration":
        return h("div", { class: "cell num", style }, fmtDuration(item.duration));
      case "tags": {
        const tags = Object.entries(item.tags || {});
        return h("div", { class: "cell", style, title: tags.map(([k, v]) => `${k}=${v}`).join("\n") },
          tags.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)));
      }
      case "note": {
        const text = item.note || item.message || "";
        return h("div", { class: "cell", style, title: text }, text);
      }
      default: {
        const value = item.values[col.index];
        if (value && typeof value === "object" && "carried" in value) {
          return h("div", {
            class: "cell num carried", style,
            title: "carried over: the run did not write this metric; it was already there",
          }, `(${fmt(value.carried)})`);
        }
        return h("div", {
          class: `cell ${isNumber(value) ? "num" : ""} ${col.kind}`, style, title: fmt(value, 17),
        }, fmt(value));
      }
    }
  }

  function groupRow(item, top, cols) {
    const toggle = () => {
      const set = new Set(state.collapsed);
      if (set.has(item.group)) set.delete(item.group); else set.add(item.group);
      state.collapsed = [...set];
      reset();
    };
    const fixedCount = fixedColumns().length;
    const lead = cols.slice(0, fixedCount).reduce((sum, c) => sum + c.width, 0);
    const cells = [h("div", { class: "cell group-name", style: { width: `${lead}px` } },
      h("button", { type: "button", class: "twisty", onclick: toggle,
        "aria-expanded": String(!item.collapsed) }, item.collapsed ? "▸" : "▾"),
      h("strong", {}, item.group || "(no experiment)"),
      h("span", { class: "muted" }, ` ${item.count} run${item.count === 1 ? "" : "s"}`))];
    cols.slice(fixedCount).forEach((col) => {
      const summary = item.summary ? item.summary[col.index] : null;
      cells.push(h("div", {
        class: "cell num group-summary", style: { width: `${col.width}px` },
        title: summary ? `mean ${summary.mean} ± ${summary.std} (n=${summary.n})` : "",
      }, summary ? `${fmt(summary.mean, 4)} ± ${fmt(summary.std, 2)}` : ""));
    });
    return h("div", { class: "row group", style: { top: `${top}px` }, role: "row" }, cells);
  }

  function render() {
    const cols = allColumns().map((c) => ({ ...c, index: columns.findIndex((x) => x.id === c.id) }));
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(count, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW_H) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i += 1) {
      const index = Math.floor(i / PAGE);
      const items = pages.get(index);
      if (!items) {
        if (!loading.has(index)) load(index);
        rows.push(h("div", { class: "row placeholder", style: { top: `${i * ROW_H}px` } }, "…"));
        continue;
      }
      const item = items[i - index * PAGE];
      if (!item) continue;
      if (item.type === "group") { rows.push(groupRow(item, i * ROW_H, cols)); continue; }
      rows.push(h("div", {
        class: `row ${item.kind}${selection.has(item.name) ? " chosen" : ""}`,
        style: { top: `${i * ROW_H}px` }, role: "row", dataset: { name: item.name },
      }, cols.map((col) => cellOf(col, item))));
    }
    clear(body, rows);
    if (count === 0 && pages.size) {
      body.append(h("div", { class: "empty" }, state.filter
        ? "No runs match the filter."
        : "No runs yet: record one with 'gitexp run -- python train.py'."));
    }
    renderSelection();
  }

  function loadedNames() {
    const names = [];
    for (const index of [...pages.keys()].sort((a, b) => a - b)) {
      for (const item of pages.get(index)) if (item.type === "row") names.push(item.name);
    }
    return names;
  }

  function selectRow(item, on, range) {
    if (range && lastSelected) {
      const names = loadedNames();
      const a = names.indexOf(lastSelected);
      const b = names.indexOf(item.name);
      if (a >= 0 && b >= 0) {
        const span = names.slice(Math.min(a, b), Math.max(a, b) + 1);
        if (on) selection.add(span); else span.forEach((n) => selection.toggle(n, false));
        lastSelected = item.name;
        return;
      }
    }
    selection.toggle(item.name, on);
    lastSelected = item.name;
  }

  async function selectAll() {
    try {
      const { names } = await get("/api/names", { ...params(0), limit: 5000 });
      selection.add(names);
      if (names.length === 5000) toast("selected the first 5,000 runs");
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function removeSelected() {
    const names = selection.names();
    if (!names.length) return;
    if (!window.confirm(`Remove ${names.length} run(s)? Their refs under refs/runs/ are deleted.`)) return;
    try {
      const { removed } = await post("/api/remove", { runs: names });
      selection.clear();
      toast(`removed ${removed.length} run(s)`);
      reset();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function renderSelection() {
    const n = selection.size;
    selectedText.textContent = n ? `${n} selected` : "";
    compareLink.href = n ? compareHref(selection.names()) : "#/compare";
    compareLink.classList.toggle("disabled", n === 0);
    compareLink.textContent = n ? `Compare ${n}` : "Compare";
    clearButton.hidden = n === 0;
    if (removeButton) removeButton.hidden = n === 0;
  }

  let frame = null;
  scroller.addEventListener("scroll", () => {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = null; render(); });
  });
  const stopSelection = selection.onChange(() => render());
  const stopUpdates = onUpdate((update) => {
    if (version !== null && update.version !== version) {
      // Refresh what is on screen; the rest is fetched again when scrolled to.
      const visible = new Set();
      const from = Math.floor(scroller.scrollTop / ROW_H / PAGE);
      const to = Math.floor((scroller.scrollTop + scroller.clientHeight) / ROW_H / PAGE);
      for (let i = from; i <= to; i += 1) visible.add(i);
      const keep = new Map([...pages].filter(([i]) => visible.has(i)));
      pages = keep;
      for (const index of visible) load(index, index === 0 || from === index);
    }
  });
  window.addEventListener("resize", render);
  reset();
  filterInput.focus();
  return () => {
    stopSelection();
    stopUpdates();
    window.removeEventListener("resize", render);
  };
}
