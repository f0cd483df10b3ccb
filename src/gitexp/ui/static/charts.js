// Charts: metric histories with uPlot (one canvas, fast with thousands of series and
// points), grouped means with a spread band, and a scatter drawn on a canvas of our own.

import { color, fmt, h, isMissing, isNumber } from "./dom.js";

/* global uPlot */

const LOG_FLOOR = 1e-15;

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function smooth(values, weight) {
  if (!weight) return values;
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (!isNumber(v)) return null;
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - weight ** count);
  });
}

// Mean and spread per step over the members of a group (no interpolation: a step counts the
// members that logged it).
export function aggregate(members, spread) {
  const byStep = new Map();
  for (const { steps, values } of members) {
    steps.forEach((step, i) => {
      if (!isNumber(values[i])) return;
      if (!byStep.has(step)) byStep.set(step, []);
      byStep.get(step).push(values[i]);
    });
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const mean = [];
  const low = [];
  const high = [];
  for (const step of steps) {
    const vs = byStep.get(step);
    const m = vs.reduce((a, b) => a + b, 0) / vs.length;
    mean.push(m);
    if (spread === "minmax") {
      low.push(Math.min(...vs));
      high.push(Math.max(...vs));
    } else {
      const sd = vs.length > 1
        ? Math.sqrt(vs.reduce((a, b) => a + (b - m) ** 2, 0) / (vs.length - 1)) : 0;
      low.push(m - sd);
      high.push(m + sd);
    }
  }
  return { steps, mean, low, high };
}

function chartWidth(el) {
  return Math.max(280, Math.floor(el.getBoundingClientRect().width) || 420);
}

// lines: [{label, color, steps, values, band: {low, high} | undefined, hidden}]
export function lineChart(el, title, lines, { log = false, xLabel = "step", height = 260 } = {}) {
  const tables = lines.map((line) => [line.steps, line.values]);
  const bandTables = [];
  lines.forEach((line) => {
    if (line.band) bandTables.push([line.steps, line.band.high], [line.steps, line.band.low]);
  });
  const all = tables.concat(bandTables);
  if (!all.length) return null;
  const joined = all.length === 1 ? [all[0][0], all[0][1]] : uPlot.join(all);
  // A log axis shows positive values down to 1e-15 (uPlot's axis stops there).
  let dropped = 0;
  const data = joined.map((column, i) => (i === 0 || !log ? column
    : column.map((v) => {
      if (isNumber(v) && v >= LOG_FLOOR) return v;
      if (isNumber(v)) dropped += 1;
      return null;
    })));
  const series = [{ label: xLabel }];
  lines.forEach((line) => series.push({
    label: line.label,
    stroke: line.color,
    width: line.band ? 2 : 1.25,
    spanGaps: true,
    show: !line.hidden,
    points: { show: line.steps.length < 40 },
  }));
  const bands = [];
  let next = lines.length + 1;
  lines.forEach((line) => {
    if (!line.band) return;
    series.push({ label: `${line.label} high`, stroke: "transparent", spanGaps: true,
      points: { show: false }, show: !line.hidden });
    series.push({ label: `${line.label} low`, stroke: "transparent", spanGaps: true,
      points: { show: false }, show: !line.hidden });
    bands.push({ series: [next, next + 1], fill: line.color.replace(/, 1\)$/, ", 0.2)") });
    next += 2;
  });
  const readout = h("div", { class: "readout muted" }, " ");
  const box = h("div", { class: "chart" }, h("div", { class: "chart-title" }, title,
    dropped ? h("span", { class: "muted" }, ` (${dropped} values at or below ${LOG_FLOOR} not drawn on a log scale)`) : null));
  el.append(box);
  let focused = null;
  const opts = {
    width: chartWidth(el.firstElementChild ? box : el) - 8,
    height,
    legend: { show: false },
    scales: { x: { time: false }, y: { distr: log ? 3 : 1, log: 10 } },
    axes: [{ label: xLabel, size: 40, labelSize: 18 }, { size: 60 }],
    series,
    bands,
    cursor: { focus: { prox: 24 }, drag: { x: true, y: false } },
    focus: { alpha: 0.35 },
    hooks: {
      setSeries: [(u, i) => { focused = i; }],
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined) { readout.textContent = " "; return; }
        const k = focused && focused <= lines.length ? focused : null;
        const x = u.data[0][i];
        if (k) readout.textContent = `${series[k].label}: ${fmt(u.data[k][i])} at ${xLabel} ${fmt(x)}`;
        else readout.textContent = `${xLabel} ${fmt(x)}`;
      }],
    },
  };
  const plot = new uPlot(opts, data, box);
  box.append(readout);
  plot.lineCount = lines.length;
  return plot;
}

// A scatter of points {x, y, label} with numeric or categorical x; hover names the run.
export function scatter(el, points, { xLabel, yLabel, onClick, height = 360 }) {
  const canvas = h("canvas", { class: "scatter", height, role: "img",
    "aria-label": `${yLabel} against ${xLabel}` });
  const tip = h("div", { class: "readout muted" }, " ");
  el.append(h("div", { class: "chart" }, canvas, tip));
  // NaN and infinities are left out, not made categories: one diverged run keeps the axis numeric
  const onAxis = points.filter((p) => !isMissing(p.x));
  const categorical = onAxis.some((p) => !isNumber(p.x));
  const cats = categorical ? [...new Set(onAxis.map((p) => fmt(p.x)))].sort() : [];
  const usable = onAxis.filter((p) => isNumber(p.y) && (categorical || isNumber(p.x)));
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(320, el.getBoundingClientRect().width - 16);
  canvas.width = w * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const pad = { l: 70, r: 16, t: 12, b: 44 };
  const ys = usable.map((p) => p.y);
  const xs = categorical ? usable.map((p) => cats.indexOf(fmt(p.x))) : usable.map((p) => p.x);
  const range = (vs) => {
    if (!vs.length) return [0, 1];
    let lo = vs.reduce((a, b) => Math.min(a, b));  // no spread: 100k arguments overflow
    let hi = vs.reduce((a, b) => Math.max(a, b));
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const m = (hi - lo) * 0.05;
    return [lo - m, hi + m];
  };
  const [x0, x1] = categorical ? [-0.5, cats.length - 0.5] : range(xs);
  const [y0, y1] = range(ys);
  const px = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const py = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const style = getComputedStyle(document.body);
  ctx.strokeStyle = style.getPropertyValue("--line") || "#cbd5e1";
  ctx.fillStyle = style.getPropertyValue("--muted") || "#64748b";
  ctx.font = "11px system-ui, sans-serif";
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, height - pad.b);
  ctx.lineTo(w - pad.r, height - pad.b);
  ctx.stroke();
  for (let i = 0; i <= 4; i += 1) {
    const y = y0 + ((y1 - y0) * i) / 4;
    ctx.fillText(fmt(y, 4), 4, py(y) + 4);
  }
  if (categorical) {
    cats.forEach((c, i) => ctx.fillText(c.slice(0, 16), px(i) - 20, height - pad.b + 16));
  } else {
    for (let i = 0; i <= 4; i += 1) {
      const x = x0 + ((x1 - x0) * i) / 4;
      ctx.fillText(fmt(x, 4), px(x) - 16, height - pad.b + 16);
    }
  }
  ctx.fillText(xLabel, w / 2 - 20, height - 8);
  const placed = usable.map((p, i) => {
    const jitter = categorical ? ((i * 7919) % 100) / 100 * 0.5 - 0.25 : 0;
    return { ...p, cx: px(xs[i] + jitter), cy: py(p.y) };
  });
  for (const p of placed) {
    ctx.fillStyle = p.color || color(0, 0.7);
    ctx.beginPath();
    ctx.arc(p.cx, p.cy, 3.5, 0, Math.PI * 2);
    ctx.fill();
  }
  const nearest = (event) => {
    const rect = canvas.getBoundingClientRect();
    const mx = event.clientX - rect.left;
    const my = event.clientY - rect.top;
    let best = null;
    let dist = 64;
    for (const p of placed) {
      const d = (p.cx - mx) ** 2 + (p.cy - my) ** 2;
      if (d < dist) { dist = d; best = p; }
    }
    return best;
  };
  canvas.addEventListener("mousemove", (event) => {
    const p = nearest(event);
    tip.textContent = p ? `${p.label}: ${xLabel} ${fmt(p.x)}, ${yLabel} ${fmt(p.y)}` : " ";
    canvas.style.cursor = p && onClick ? "pointer" : "default";
  });
  if (onClick) canvas.addEventListener("click", (event) => { const p = nearest(event); if (p) onClick(p); });
  return { points: placed.length, skipped: points.length - usable.length };
}
