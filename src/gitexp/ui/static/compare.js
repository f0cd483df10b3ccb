// Comparing a selection of runs (10 or 1,000): params and metrics side by side with the
// differences marked, histories overlaid (log scale, smoothing, hiding, grouped means with a
// spread), a scatter of any param against any metric, parallel coordinates, and the diff of
// two runs (code, params, metrics, data, environment).

import { get, post } from "./api.js";
import { aggregate, lineChart, scatter, smooth } from "./charts.js";
import { diffView } from "./diffview.js";
import { clear, color, compareHref, debounce, fmt, h, isNumber, runHref, table } from "./dom.js";
import { parallel } from "./parcoords.js";
import { selection } from "./selection.js";

const TABS = [
  ["table", "Params & metrics"], ["charts", "Charts"], ["scatter", "Scatter"],
  ["parallel", "Parallel coordinates"], ["diff", "Diff"],
];

export function mount(container, route) {
  // `run=A&run=B`; `runs=A,B` is read too, for links written by hand
  const fromUrl = route.params.getAll("run").length ? route.params.getAll("run")
    : (route.params.get("runs") || "").split(",").filter(Boolean);
  const names = fromUrl.length ? fromUrl : selection.names();
  if (!names.length) {
    container.append(h("section", { class: "empty-page" },
      h("h1", {}, "Compare runs"),
      h("p", {}, "Choose runs in the ", h("a", { href: "#/" }, "runs table"),
        " (tick their boxes), then press Compare.")));
    return null;
  }
  const state = { tab: route.params.get("tab") || "table", hidden: new Set() };
  const body = h("div", { class: "tab-body" });
  const tabs = h("nav", { class: "tabs", role: "tablist" });
  const header = h("div", { class: "compare-head" }, h("h1", {}, `Comparing ${names.length} runs`));
  container.append(h("section", { class: "compare-view" }, header, tabs, body));
  body.append(h("p", { class: "muted" }, "Reading runs…"));
  let data = null;
  let alive = true;

  post("/api/compare", { runs: names }).then((result) => {
    if (!alive) return;
    data = result;
    if (data.unknown.length) {
      header.append(h("p", { class: "error" }, `Not found: ${data.unknown.join(", ")}`));
    }
    const shown = data.runs.slice(0, 40);
    header.append(h("p", { class: "run-chips" }, shown.map((r, i) =>
      h("a", { class: "chip", href: runHref(r.name) },
        h("span", { class: "swatch", style: { background: color(i) } }), r.name)),
    data.runs.length > shown.length ? h("span", { class: "muted" }, ` and ${data.runs.length - shown.length} more`) : null));
    renderTabs();
    show();
  }).catch((error) => {
    clear(body, h("p", { class: "error" }, error.message));
  });

  function renderTabs() {
    clear(tabs, TABS.map(([id, label]) => h("button", {
      type: "button", role: "tab", class: state.tab === id ? "active" : "",
      "aria-selected": String(state.tab === id),
      onclick: () => { state.tab = id; renderTabs(); show(); },
    }, label)));
  }

  function show() {
    clear(body);
    const views = { table: tableTab, charts: chartsTab, scatter: scatterTab, parallel: parallelTab, diff: diffTab };
    views[state.tab](body);
  }

  // --- params and metrics ---------------------------------------------------------------------

  function tableTab(el) {
    const only = h("input", { type: "checkbox", checked: data.runs.length > 1 });
    const holder = h("div");
    el.append(h("div", { class: "controls" }, h("label", {}, only, " only keys that differ")), holder);
    const draw = () => {
      clear(holder,
        valuesTable("Params", data.params, (r) => r.params, only.checked),
        valuesTable("Metrics", data.metrics, (r) => r.metrics, only.checked));
    };
    only.addEventListener("change", draw);
    draw();
  }

  function valuesTable(title, keys, valuesOf, onlyDiffering) {
    const rows = keys.map((k, i) => ({ ...k, i })).filter((k) => !onlyDiffering || k.varying);
    if (!rows.length) {
      return h("div", {}, h("h2", {}, title), h("p", { class: "muted" },
        keys.length ? "Every run has the same values." : "None."));
    }
    const head = h("tr", {}, h("th", { class: "key" }, "key"),
      data.runs.map((r) => h("th", {}, h("a", { href: runHref(r.name), title: r.name }, r.name))));
    const lines = rows.map((k) => {
      const first = fmt(valuesOf(data.runs[0])[k.i], 17);
      return h("tr", { class: k.varying ? "differs" : "" },
        h("th", { class: "key", title: `${k.path}:${k.key}` }, k.label),
        data.runs.map((r) => {
          const value = valuesOf(r)[k.i];
          const changed = k.varying && fmt(value, 17) !== first;
          return h("td", { class: `${isNumber(value) ? "num" : ""}${changed ? " changed" : ""}`,
            title: fmt(value, 17) }, fmt(value));
        }));
    });
    return h("div", { class: "wide" }, h("h2", {}, title),
      h("div", { class: "hscroll" }, h("table", { class: `compare-table ${title.toLowerCase()}` },
        h("thead", {}, head), h("tbody", {}, lines))));
  }

  // --- histories ------------------------------------------------------------------------------

  function paramLabels() {
    return data.params.map((p, i) => ({ ...p, i })).filter((p) => p.varying);
  }

  function chartsTab(el) {
    const metrics = Object.keys(data.histories);
    if (!metrics.length) {
      el.append(h("p", { class: "muted" },
        "These runs have no metric histories (files under dvclive/plots/metrics/ or history/)."));
      return;
    }
    const log = h("input", { type: "checkbox", checked: state.log });
    const weight = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: state.smooth || 0,
      "aria-label": "smoothing" });
    const weightText = h("span", { class: "muted" });
    const group = h("select", { "aria-label": "group by" },
      h("option", { value: "" }, "each run"),
      h("option", { value: "experiment" }, "experiment"),
      paramLabels().map((p) => h("option", { value: String(p.i) }, p.label)));
    group.value = state.group || "";
    const spread = h("select", { "aria-label": "spread" },
      h("option", { value: "std" }, "± standard deviation"), h("option", { value: "minmax" }, "min to max"));
    spread.value = state.spread || "std";
    const search = h("input", { type: "search", placeholder: "metrics: loss acc", value: state.metricFilter || "" });
    const legend = h("div", { class: "legend" });
    const grid = h("div", { class: "chart-grid" });
    el.append(h("div", { class: "controls" },
      h("label", {}, log, " log scale"),
      h("label", {}, "smoothing ", weight, weightText),
      h("label", {}, "lines: ", group),
      h("label", {}, "spread ", spread),
      search), legend, grid);

    const draw = () => {
      state.log = log.checked;
      state.smooth = Number(weight.value);
      state.group = group.value;
      state.spread = spread.value;
      state.metricFilter = search.value;
      weightText.textContent = ` ${state.smooth.toFixed(2)}`;
      const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      const chosen = metrics.filter((m) => !words.length || words.some((w) => m.toLowerCase().includes(w)));
      const lines = linesOf();
      renderLegend(legend, lines, draw);
      clear(grid);
      for (const metric of chosen) {
        const cell = h("div", { class: "chart-cell", dataset: { metric } });
        grid.append(cell);
        const series = [];
        for (const line of lines) {
          const result = line.build(metric);
          if (result) series.push({ ...result, label: line.label, color: line.color, hidden: state.hidden.has(line.key) });
        }
        const plot = lineChart(cell, metric, series, { log: state.log });
        cell.dataset.series = String(series.filter((s) => !s.hidden).length);
        if (!plot) cell.append(h("p", { class: "muted" }, "no data"));
      }
    };
    for (const control of [log, group, spread]) control.addEventListener("change", draw);
    weight.addEventListener("input", debounce(draw, 120));
    search.addEventListener("input", debounce(draw, 250));
    draw();
  }

  // One line per run, or per group (mean with a band) when grouped.
  function linesOf() {
    const weight = state.smooth || 0;
    if (!state.group) {
      return data.runs.map((run, i) => ({
        key: run.name, label: run.name, color: color(i),
        build: (metric) => {
          const found = data.histories[metric][run.name];
          return found ? { steps: found.steps, values: smooth(found.values, weight) } : null;
        },
      }));
    }
    const groups = new Map();
    data.runs.forEach((run) => {
      const key = state.group === "experiment" ? (run.experiment || "(no experiment)")
        : fmt(run.params[Number(state.group)]);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(run);
    });
    return [...groups.entries()].map(([key, runs], i) => ({
      key: `group:${key}`, label: `${key} (${runs.length})`, color: color(i),
      build: (metric) => {
        const members = runs.map((r) => data.histories[metric][r.name]).filter(Boolean)
          .map((s) => ({ steps: s.steps, values: smooth(s.values, weight) }));
        if (!members.length) return null;
        const agg = aggregate(members, state.spread);
        return { steps: agg.steps, values: agg.mean, band: { low: agg.low, high: agg.high } };
      },
    }));
  }

  function renderLegend(el, lines, redraw) {
    const filter = h("input", { type: "search", placeholder: "find a line", class: "small" });
    const list = h("div", { class: "legend-items" });
    const fill = () => {
      const word = filter.value.toLowerCase();
      clear(list, lines.filter((l) => !word || l.label.toLowerCase().includes(word)).slice(0, 500).map((line) =>
        h("button", {
          type: "button", class: `legend-item${state.hidden.has(line.key) ? " off" : ""}`,
          title: "click to hide or show",
          onclick: () => {
            if (state.hidden.has(line.key)) state.hidden.delete(line.key); else state.hidden.add(line.key);
            redraw();
          },
        }, h("span", { class: "swatch", style: { background: line.color } }), line.label)));
    };
    filter.addEventListener("input", fill);
    clear(el, lines.length > 12 ? filter : null,
      h("button", { type: "button", class: "small", onclick: () => { lines.forEach((l) => state.hidden.delete(l.key)); redraw(); } }, "show all"),
      h("button", { type: "button", class: "small", onclick: () => { lines.forEach((l) => state.hidden.add(l.key)); redraw(); } }, "hide all"),
      list);
    fill();
  }

  // --- scatter --------------------------------------------------------------------------------

  function keyOptions() {
    return [
      ...data.params.map((p, i) => ({ value: `p${i}`, label: `param ${p.label}`, get: (r) => r.params[i], varying: p.varying })),
      ...data.metrics.map((m, i) => ({ value: `m${i}`, label: `metric ${m.label}`, get: (r) => r.metrics[i], varying: m.varying })),
    ];
  }

  function scatterTab(el) {
    const options = keyOptions();
    if (!data.metrics.length) { el.append(h("p", { class: "muted" }, "These runs have no metrics.")); return; }
    const xSelect = h("select", { "aria-label": "x" }, options.map((o) => h("option", { value: o.value }, o.label)));
    const ySelect = h("select", { "aria-label": "y" }, options.filter((o) => o.value.startsWith("m"))
      .map((o) => h("option", { value: o.value }, o.label)));
    xSelect.value = state.scatterX || (options.find((o) => o.varying && o.value.startsWith("p")) || options[0]).value;
    ySelect.value = state.scatterY || "m0";
    const holder = h("div");
    el.append(h("div", { class: "controls" }, h("label", {}, "x ", xSelect), h("label", {}, "y ", ySelect)), holder);
    const draw = () => {
      state.scatterX = xSelect.value;
      state.scatterY = ySelect.value;
      const x = options.find((o) => o.value === xSelect.value);
      const y = options.find((o) => o.value === ySelect.value);
      clear(holder, h("div", { class: "chart-title" }, `${y.label} against ${x.label}`));
      const points = data.runs.map((r, i) => ({ x: x.get(r), y: y.get(r), label: r.name, color: color(i, 0.8) }));
      const drawn = scatter(holder, points, {
        xLabel: x.label.replace(/^\w+ /, ""), yLabel: y.label.replace(/^\w+ /, ""),
        onClick: (p) => { location.hash = runHref(p.label); },
      });
      if (drawn.skipped) holder.append(h("p", { class: "muted" }, `${drawn.skipped} run(s) without both values are left out.`));
    };
    xSelect.addEventListener("change", draw);
    ySelect.addEventListener("change", draw);
    draw();
  }

  // --- parallel coordinates -------------------------------------------------------------------

  function parallelTab(el) {
    if (!data.metrics.length) { el.append(h("p", { class: "muted" }, "These runs have no metrics.")); return; }
    const metric = h("select", { "aria-label": "colour by" },
      data.metrics.map((m, i) => h("option", { value: String(i) }, m.label)));
    metric.value = state.parallelMetric || "0";
    const chosen = state.parallelParams || new Set(data.params.map((p, i) => (p.varying ? i : null)).filter((i) => i !== null));
    state.parallelParams = chosen;
    const checks = h("div", { class: "param-checks" }, data.params.map((p, i) => {
      const box = h("input", { type: "checkbox", checked: chosen.has(i) });
      box.addEventListener("change", () => { if (box.checked) chosen.add(i); else chosen.delete(i); draw(); });
      return h("label", { class: p.varying ? "" : "muted", title: p.varying ? "" : "the same in every run" }, box, ` ${p.label}`);
    }));
    const status = h("div", { class: "muted" });
    const holder = h("div");
    el.append(h("div", { class: "controls" }, h("label", {}, "colour by ", metric)), checks, holder, status);
    const draw = () => {
      state.parallelMetric = metric.value;
      const m = Number(metric.value);
      const axes = [...chosen].sort((a, b) => a - b).map((i) => ({ label: data.params[i].label, values: data.runs.map((r) => r.params[i]) }));
      axes.push({ label: data.metrics[m].label, values: data.runs.map((r) => r.metrics[m]) });
      clear(holder);
      parallel(holder, axes, data.runs.map((r) => r.name), {
        onBrush: (kept) => {
          clear(status, `${kept.length} of ${data.runs.length} runs in the ranges`,
            kept.length && kept.length < data.runs.length
              ? [" · ", h("a", { href: compareHref(kept) }, "compare these")] : null);
        },
      });
    };
    metric.addEventListener("change", draw);
    draw();
  }

  // --- diff of two runs -----------------------------------------------------------------------

  function diffTab(el) {
    if (data.runs.length < 2) { el.append(h("p", { class: "muted" }, "Choose two runs to see their diff.")); return; }
    const pick = (value) => h("select", {}, data.runs.map((r) => h("option", { value: r.name }, r.name)));
    const a = pick();
    const b = pick();
    a.value = state.diffA || data.runs[0].name;
    b.value = state.diffB || data.runs[1].name;
    const holder = h("div");
    el.append(h("div", { class: "controls" }, h("label", {}, "A ", a), h("label", {}, "B ", b)), holder);
    const load = async () => {
      state.diffA = a.value;
      state.diffB = b.value;
      clear(holder, h("p", { class: "muted" }, "Comparing…"));
      try {
        const diff = await get("/api/diff", { a: a.value, b: b.value });
        renderDiff(holder, diff);
      } catch (error) {
        clear(holder, h("p", { class: "error" }, error.message));
      }
    };
    a.addEventListener("change", load);
    b.addEventListener("change", load);
    load();
  }

  return () => { alive = false; };
}

export function renderDiff(el, diff) {
  const changes = diff.changes.map((c) => [c.kind === "params" ? "param" : "metric", c.path, c.key,
    fmt(c.old), fmt(c.new), c.change === null ? "" : fmt(c.change),
    c.relative === null ? "" : `${(c.relative * 100).toFixed(2)}%`]);
  const data = Object.entries(diff.data).map(([path, d]) => [path,
    d.old ? d.old.hash.slice(0, 12) : "-", d.new ? d.new.hash.slice(0, 12) : "-",
    d.old ? fmt(d.old.size) : "-", d.new ? fmt(d.new.size) : "-",
    d.added === undefined ? "" : `+${d.added} −${d.removed} ~${d.modified}`]);
  const env = diff.environment.map((e) => [e.what, fmt(e.old), fmt(e.new)]);
  clear(el,
    diff.warnings.map((w) => h("p", { class: "muted" }, w)),
    h("h2", {}, "Params and metrics"),
    changes.length ? table(["", "file", "key", diff.a.name, diff.b.name, "change", "change %"], changes, { class: "diff-table" })
      : h("p", { class: "muted" }, "No differences."),
    h("h2", {}, "Data"),
    data.length ? table(["data", "old hash", "new hash", "old size", "new size", "files"], data)
      : h("p", { class: "muted" }, "No differences."),
    h("h2", {}, "Environment"),
    env.length ? table(["", diff.a.name, diff.b.name], env)
      : h("p", { class: "muted" }, "No differences (or a side is not a run)."),
    h("h2", {}, "Code"),
    diffView(diff.code));
}

