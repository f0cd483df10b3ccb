// Parallel coordinates on one canvas: an axis per param (numbers, or categories for text)
// and the chosen metric last, a line per run coloured by that metric. Drag along an axis to
// keep only the runs inside the range; drag again elsewhere on it to move the range, click
// it to clear. 1,000 runs draw in a few milliseconds.

import { fmt, h, isMissing, isNumber } from "./dom.js";

export function scaleOf(values) {
  const present = values.filter((v) => !isMissing(v));  // NaN and infinities are left out
  const numbers = present.filter(isNumber);
  if (numbers.length && numbers.length === present.length) {
    let lo = numbers.reduce((a, b) => Math.min(a, b));  // no spread: 100k arguments overflow
    let hi = numbers.reduce((a, b) => Math.max(a, b));
    if (lo === hi) { lo -= 1; hi += 1; }
    return { kind: "number", lo, hi, at: (v) => (isNumber(v) ? (v - lo) / (hi - lo) : null) };
  }
  const cats = [...new Set(present.map((v) => fmt(v)))].sort();
  const n = Math.max(1, cats.length - 1);
  return {
    kind: "category", cats,
    at: (v) => (isMissing(v) ? null : (cats.length === 1 ? 0.5 : cats.indexOf(fmt(v)) / n)),
  };
}

// Viridis-like ramp from low (purple) to high (yellow).
function ramp(t) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x);
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, 0.75)`;
}

// axes: [{label, values}] (values per run); runs: [name]; returns {canvas, kept()}
export function parallel(el, axes, runs, { height = 380, onBrush } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(480, el.getBoundingClientRect().width - 16);
  const canvas = h("canvas", { class: "parcoords", role: "img",
    "aria-label": `parallel coordinates of ${runs.length} runs over ${axes.length} axes` });
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  el.append(canvas);
  const ctx = canvas.getContext("2d");
  const pad = { l: 40, r: 60, t: 36, b: 28 };
  const scales = axes.map((a) => scaleOf(a.values));
  const gap = axes.length > 1 ? (width - pad.l - pad.r) / (axes.length - 1) : 0;
  const ax = (i) => pad.l + i * gap;
  const ay = (t) => pad.t + (1 - t) * (height - pad.t - pad.b);
  const brushes = axes.map(() => null); // [lo, hi] in 0..1
  const colorAxis = axes.length - 1;

  function positions(r) {
    return axes.map((a, i) => scales[i].at(a.values[r]));
  }

  function inside(r) {
    return brushes.every((b, i) => {
      if (!b) return true;
      const t = scales[i].at(axes[i].values[r]);
      return t !== null && t >= b[0] && t <= b[1];
    });
  }

  function draw() {
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const order = runs.map((_, r) => r);
    const kept = order.filter(inside);
    const out = order.filter((r) => !inside(r));
    ctx.lineWidth = 1;
    for (const [list, faded] of [[out, true], [kept, false]]) {
      for (const r of list) {
        const ts = positions(r);
        const c = scales[colorAxis].at(axes[colorAxis].values[r]);
        ctx.strokeStyle = faded ? "rgba(148, 163, 184, 0.18)" : (c === null ? "rgba(100,116,139,0.5)" : ramp(c));
        ctx.beginPath();
        let pen = false;
        ts.forEach((t, i) => {
          if (t === null) { pen = false; return; }
          if (pen) ctx.lineTo(ax(i), ay(t)); else ctx.moveTo(ax(i), ay(t));
          pen = true;
        });
        ctx.stroke();
      }
    }
    ctx.font = "11px system-ui, sans-serif";
    axes.forEach((a, i) => {
      const x = ax(i);
      ctx.strokeStyle = "#334155";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, ay(1));
      ctx.lineTo(x, ay(0));
      ctx.stroke();
      ctx.fillStyle = "#0f172a";
      ctx.textAlign = "center";
      ctx.fillText(a.label.length > 22 ? `${a.label.slice(0, 21)}…` : a.label, x, 14);
      ctx.fillStyle = "#475569";
      const s = scales[i];
      if (s.kind === "number") {
        ctx.fillText(fmt(s.hi, 4), x, ay(1) - 6);
        ctx.fillText(fmt(s.lo, 4), x, ay(0) + 14);
      } else {
        s.cats.slice(0, 12).forEach((c) => ctx.fillText(c.slice(0, 14), x, ay(s.at(c)) - 4));
      }
      const b = brushes[i];
      if (b) {
        ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
        ctx.fillRect(x - 7, ay(b[1]), 14, ay(b[0]) - ay(b[1]));
      }
    });
    if (onBrush) onBrush(kept.map((r) => runs[r]));
  }

  let drag = null;
  const tOf = (event) => {
    const rect = canvas.getBoundingClientRect();
    return {
      axis: Math.round((event.clientX - rect.left - pad.l) / (gap || 1)),
      x: event.clientX - rect.left,
      t: 1 - (event.clientY - rect.top - pad.t) / (height - pad.t - pad.b),
    };
  };
  canvas.addEventListener("mousedown", (event) => {
    const p = tOf(event);
    if (p.axis < 0 || p.axis >= axes.length || Math.abs(p.x - ax(p.axis)) > 14) return;
    drag = { axis: p.axis, start: Math.min(1, Math.max(0, p.t)), moved: false };
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const t = Math.min(1, Math.max(0, tOf(event).t));
    if (Math.abs(t - drag.start) > 0.01) drag.moved = true;
    if (drag.moved) {
      brushes[drag.axis] = [Math.min(drag.start, t), Math.max(drag.start, t)];
      draw();
    }
  });
  window.addEventListener("mouseup", () => {
    if (drag && !drag.moved) { brushes[drag.axis] = null; draw(); }
    drag = null;
  });
  draw();
  return { canvas, kept: () => runs.filter((_, r) => inside(r)), brush: (i, range) => { brushes[i] = range; draw(); } };
}
