// A readable code diff: the files changed (status, lines added and removed), then the patch
// with added, removed and context lines coloured, one collapsible block per file.

import { h } from "./dom.js";

const MAX_LINES = 20000;
const STATUS = { A: "added", D: "deleted", M: "modified", R: "renamed", C: "copied", T: "type changed" };

export function diffView(code) {
  if (!code) return h("p", { class: "muted" }, "No code to compare.");
  if (!code.files.length) return h("p", { class: "muted" }, "No files changed.");
  const summary = h("table", { class: "files" },
    h("tbody", {}, code.files.map((f) => h("tr", {},
      h("td", {}, h("span", { class: `file-status s-${f.status}` }, STATUS[f.status] || f.status)),
      h("td", { class: "mono" }, f.from ? `${f.from} → ${f.path}` : f.path),
      h("td", { class: "num added" }, f.binary ? "binary" : `+${f.added ?? 0}`),
      h("td", { class: "num removed" }, f.binary ? "" : `−${f.removed ?? 0}`)))));
  const blocks = [];
  let current = null;
  let lines = 0;
  for (const line of code.patch.split("\n")) {
    if (lines >= MAX_LINES) break;
    lines += 1;
    if (line.startsWith("diff --git ")) {
      const title = line.replace(/^diff --git a\/(.*) b\/.*$/, "$1");
      current = h("pre", { class: "patch" });
      // metric and history files the run wrote are long and read better as charts: closed
      const data = /^(dvclive|history)\//.test(title) || /\.(tsv|csv)$/.test(title);
      blocks.push(h("details", { open: blocks.length < 30 && !data },
        h("summary", { class: "mono" }, title), current));
      continue;
    }
    if (!current) continue;
    let cls = "ctx";
    if (line.startsWith("+++") || line.startsWith("---") || /^(index|new file|deleted file|similarity|rename|old mode|new mode|Binary)/.test(line)) cls = "meta";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    current.append(h("span", { class: cls }, `${line}\n`));
  }
  const notes = [];
  if (code.truncated || lines >= MAX_LINES) {
    notes.push(h("p", { class: "muted" }, "The patch is long: its end is left out here; see it with git diff."));
  }
  return h("div", { class: "diff" }, summary, blocks, notes);
}
