// One run: its status, command and times, params and metrics, metric histories, DVC plots
// and images, data and artifacts, the files it changed, its environment, its log (followed
// while it runs), and the commands that return to it.

import { fileUrl, get, onUpdate, post } from "./api.js";
import { lineChart } from "./charts.js";
import { diffView } from "./diffview.js";
import {
  badge, clear, color, copyButton, fmt, fmtDuration, fmtSize, fmtTime, h, isNumber, table, toast,
} from "./dom.js";
import { selection } from "./selection.js";

const FIELDS = [
  ["command", (v) => h("code", {}, Array.isArray(v) ? v.join(" ") : fmt(v))],
  ["exit_code", fmt], ["started", fmtTime], ["ended", fmtTime], ["duration", fmtDuration],
  ["branch", (v) => (v ? String(v).replace(/^refs\/heads\//, "") : "-")],
  ["author", fmt], ["host", fmt], ["cwd", fmt], ["message", fmt], ["overrides", (v) => (v && v.length ? v.join(" ") : "-")],
  ["outs", (v) => (v && v.length ? v.join(", ") : "-")], ["reproduces", fmt], ["parent", fmt],
  ["interrupted_by", fmt], ["pid", fmt], ["workspace", fmt], ["gitexp", fmt],
];

export function mount(container, route, app) {
  const name = route.run;
  const page = h("section", { class: "run-view" }, h("p", { class: "muted" }, "Reading the run…"));
  container.append(page);
  let alive = true;
  let logOffset = 0;
  let logTimer = null;
  let current = null;
  let charts = null;

  async function load() {
    try {
      const run = await get("/api/run", { name });
      if (!alive) return;
      const first = current === null || current.kind !== run.kind;
      current = run;
      if (first) render(run);
      else refreshLive(run);
    } catch (error) {
      if (alive) clear(page, h("h1", {}, name), h("p", { class: "error" }, error.message),
        h("p", {}, h("a", { href: "#/" }, "Back to the runs")));
    }
  }

  function render(run) {
    const title = h("h1", {}, run.name, " ", run.status ? badge(run.status) : null,
      run.kind === "revision" ? h("span", { class: "kind" }, "git revision") : null);
    const actions = h("div", { class: "actions" },
      run.kind === "run" ? h("button", { type: "button", onclick: () => { selection.toggle(run.name, true); toast(`${run.name} added to the selection`); } }, "Add to selection") : null,
      app.info.write && run.kind === "run" ? h("button", { type: "button", class: "danger", onclick: () => remove(run.name) }, "Remove…") : null);
    const logBox = h("pre", { class: "log", tabindex: "0" }, run.log.text || "(no output)");
    charts = h("div", { class: "chart-grid" });
    const sections = [
      title, actions,
      summary(run),
      app.info.write && run.kind === "run" ? annotate(run, () => { current = null; load(); }) : null,
      run.errors && Object.keys(run.errors).length
        ? h("div", { class: "error" }, Object.entries(run.errors).map(([k, v]) => h("div", {}, `${k}: ${v}`))) : null,
      h("div", { class: "two" },
        h("div", {}, h("h2", {}, "Params"), flatTable(run.params)),
        h("div", {}, h("h2", {}, "Metrics"), flatTable(run.metrics, run.carried))),
      h("h2", {}, "Metric histories"), charts,
      run.plots.length ? [h("h2", {}, "DVC plots"), plots(run)] : null,
      run.images.length ? [h("h2", {}, "Images"), images(run)] : null,
      run.kind !== "live" ? [h("h2", {}, "Data and artifacts"), artifacts(run)] : null,
      run.changes ? [h("h2", {}, run.kind === "run" ? "Files changed against its base" : "Files changed against its parent"), diffView(run.changes)] : null,
      Object.keys(run.environment).length ? [h("h2", {}, "Environment"), environment(run.environment)] : null,
      h("h2", { id: "log" }, "Log", run.kind === "live" ? h("span", { class: "muted" }, " (following)") : null),
      run.log.truncated ? h("p", { class: "muted" }, `The last ${fmtSize(run.log.text.length)} of ${fmtSize(run.log.size)}; `,
        run.kind === "run" ? h("a", { href: fileUrl("file", run.name, ".gitexp/run.log") }, "download all of it") : null) : null,
      logBox,
      run.commands.length ? [h("h2", {}, "Go back to this run"), commands(run.commands)] : null,
    ];
    clear(page, sections);
    drawCharts(run);
    if (run.kind === "live") {
      logOffset = run.log.offset || 0;
      follow(logBox);
    }
  }

  function refreshLive(run) {
    drawCharts(run);
    const tables = page.querySelectorAll(".two > div");
    if (tables.length === 2) {
      clear(tables[0], h("h2", {}, "Params"), flatTable(run.params));
      clear(tables[1], h("h2", {}, "Metrics"), flatTable(run.metrics, run.carried));
    }
  }

  function drawCharts(run) {
    clear(charts);
    const entries = Object.entries(run.histories);
    if (!entries.length) {
      charts.append(h("p", { class: "muted" }, run.kind === "live"
        ? "No history flushed yet." : "No per-step metrics (dvclive/plots/metrics/ or history/)."));
      return;
    }
    entries.forEach(([metric, series], i) => {
      const cell = h("div", { class: "chart-cell", dataset: { metric } });
      charts.append(cell);
      lineChart(cell, metric, [{ label: run.name, color: color(i), steps: series.steps, values: series.values }]);
    });
  }

  function follow(logBox) {
    const tick = async () => {
      if (!alive) return;
      try {
        const part = await get("/api/log", { name, offset: logOffset });
        if (part.reset) logBox.textContent = "";
        if (part.text) {
          const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
          logBox.append(part.text);
          if (atEnd) logBox.scrollTop = logBox.scrollHeight;
        }
        logOffset = part.offset;
        if (!part.running) {
          current = null; // the run has landed: show it as recorded
          load();
          return;
        }
      } catch {
        // the server may be restarting: try again
      }
      logTimer = setTimeout(tick, 1000);
    };
    logTimer = setTimeout(tick, 500);
  }

  async function remove(runName) {
    if (!window.confirm(`Remove run ${runName}? Its ref refs/runs/${runName} is deleted.`)) return;
    try {
      await post("/api/remove", { runs: [runName] });
      selection.toggle(runName, false);
      toast(`removed ${runName}`);
      location.hash = "#/";
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const stop = onUpdate(() => { if (current && current.kind === "live") load(); });
  load();
  return () => {
    alive = false;
    clearTimeout(logTimer);
    stop();
  };
}

function summary(run) {
  const record = run.record || {};
  const rows = [];
  if (run.rev) rows.push(["commit", h("code", {}, run.rev)]);
  if (run.base) rows.push(["base", h("span", {}, h("code", {}, run.base.slice(0, 10)), record.branch ? ` on ${String(record.branch).replace(/^refs\/heads\//, "")}` : "")]);
  for (const [key, show] of FIELDS) {
    if (key === "branch") continue;
    const value = record[key];
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) continue;
    rows.push([key.replace(/_/g, " "), show(value)]);
  }
  const tags = Object.entries(run.tags || {});
  if (tags.length) rows.push(["tags", h("span", {}, tags.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)))]);
  if (run.note) rows.push(["note", run.note]);
  return h("dl", { class: "summary" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// Tags and the note, changed as `gitexp tag` and `gitexp note` do (only with --write).
function annotate(run, reload) {
  const pair = h("input", { type: "text", placeholder: "key=value", "aria-label": "new tag", spellcheck: "false" });
  const note = h("textarea", { rows: 2, "aria-label": "note", placeholder: "a note on this run" }, run.note || "");
  const act = async (path, body, done) => {
    try {
      await post(path, body);
      toast(done);
      reload();
    } catch (error) {
      toast(error.message, "error");
    }
  };
  const chips = Object.entries(run.tags || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`,
    h("button", { type: "button", class: "chip-x", title: `remove tag ${k}`, "aria-label": `remove tag ${k}`,
      onclick: () => act("/api/tag", { run: run.name, delete: [k] }, `removed tag ${k}`) }, "×")));
  return h("div", { class: "annotate" },
    h("div", {}, h("span", { class: "muted" }, "tags "), chips,
      h("form", { class: "inline", onsubmit: (e) => {
        e.preventDefault();
        const [key, ...rest] = pair.value.split("=");
        if (!key || !rest.length) { toast("write KEY=VALUE", "error"); return; }
        act("/api/tag", { run: run.name, tags: { [key.trim()]: rest.join("=") } }, `tagged ${key}`);
      } }, pair, h("button", { type: "submit" }, "Add tag"))),
    h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      act("/api/note", { run: run.name, text: note.value }, note.value ? "note saved" : "note removed");
    } }, note, h("button", { type: "submit" }, "Save note")));
}

function flatTable(files, carried = {}) {
  const rows = [];
  for (const [path, flat] of Object.entries(files || {})) {
    for (const [key, value] of Object.entries(flat)) {
      rows.push([key, h("td", { class: isNumber(value) ? "num" : "", title: fmt(value, 17) }, fmt(value)), h("td", { class: "muted" }, path)]);
    }
  }
  // metrics files the run did not write: what was there before it, not its own results
  for (const [path, flat] of Object.entries(carried || {})) {
    for (const [key, value] of Object.entries(flat)) {
      rows.push([key, h("td", { class: "num carried", title: "carried over: the run did not write this file" }, `(${fmt(value)})`),
        h("td", { class: "muted" }, `${path} (carried over)`)]);
    }
  }
  return rows.length ? table(["key", "value", "file"], rows, { class: "flat" }) : h("p", { class: "muted" }, "None.");
}

function plots(run) {
  return h("div", { class: "chart-grid" }, run.plots.map((plot) => {
    const cell = h("div", { class: "chart-cell" });
    if (plot.pairs.length) {
      cell.append(h("div", { class: "chart-title" }, plot.title), confusion(plot.pairs));
      return cell;
    }
    requestAnimationFrame(() => lineChart(cell, plot.title, plot.series.map((s, i) => ({
      label: s.name, color: color(i), steps: s.x, values: s.y,
    })), { xLabel: plot.x || "x" }));
    return cell;
  }));
}

// A confusion matrix from (actual, predicted) pairs: counts, rows actual.
function confusion(pairs) {
  const counts = new Map();
  const labels = new Set();
  for (const [actual, predicted] of pairs) {
    labels.add(actual);
    labels.add(predicted);
    const key = `${actual}\u0000${predicted}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const order = [...labels].sort();
  return table(["actual \\ predicted", ...order],
    order.map((a) => [a, ...order.map((p) => fmt(counts.get(`${a}\u0000${p}`) || 0))]), { class: "confusion" });
}

function images(run) {
  return h("div", { class: "images" }, run.images.map(({ path, source }) => {
    const url = fileUrl(source, run.name, path);
    return h("figure", {},
      h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: path, loading: "lazy" })),
      h("figcaption", { class: "mono" }, path));
  }));
}

function artifacts(run) {
  if (!run.artifacts.length) return h("p", { class: "muted" }, "No DVC-tracked data or artifacts.");
  const rows = [];
  for (const item of run.artifacts) {
    const link = item.in_cache && !item.files
      ? h("a", { href: fileUrl("artifact", run.name, item.path), download: "" }, "download")
      : h("span", { class: "muted", title: "fetch it with gitexp pull" }, item.in_cache ? "" : "not in the local cache");
    rows.push([h("span", { class: "mono" }, item.path), fmtSize(item.size), item.nfiles ?? "", h("code", { title: item.hash }, item.hash.slice(0, 12)), item.pointer, link]);
    for (const file of (item.files || []).slice(0, 200)) {
      rows.push([h("span", { class: "mono indent" }, file.path), "", "", h("code", { title: file.hash }, file.hash.slice(0, 12)), "",
        file.in_cache ? h("a", { href: fileUrl("artifact", run.name, file.path), download: "" }, "download") : h("span", { class: "muted" }, "not cached")]);
    }
  }
  return table(["path", "size", "files", "hash", "pointer", ""], rows, { class: "artifacts" });
}

function environment(env) {
  const rows = [];
  if (env.python) rows.push(["python", env.python]);
  if (env.platform) rows.push(["platform", env.platform]);
  if (env.cpu) rows.push(["cpu", `${env.cpu.model || "?"} (${env.cpu.count || "?"} cores)`]);
  if (env.gpu && env.gpu.length) rows.push(["gpu", env.gpu.join(", ")]);
  for (const [k, v] of Object.entries(env.env || {})) rows.push([`env ${k}`, v]);
  const packages = Object.entries(env.packages || {});
  return h("div", {}, table(["what", "value"], rows, { class: "flat" }),
    packages.length ? h("details", {}, h("summary", {}, `${packages.length} installed packages`),
      table(["package", "version"], packages)) : null);
}

function commands(list) {
  return h("div", { class: "commands" }, list.map((c) => h("div", { class: "command" },
    h("span", { class: "muted" }, c.what), h("code", {}, c.command), copyButton(c.command))));
}
