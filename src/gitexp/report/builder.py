"""`gitexp report`: what a change did to the model, as markdown for a pull-request comment or
as one self-contained HTML file.

`gather` reads git (one batch process); `build_markdown` and `build_html` are pure functions
of the gathered data.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.core.charts import Series, mermaid_chart, svg_chart
from gitexp.core.compare import Entry, diff_sections
from gitexp.core.config import load_config
from gitexp.core.metrics import delta, is_number, relative, sort_key
from gitexp.core.query import evaluate, keys_of, parse_filter
from gitexp.core.render import escape_markdown, format_value
from gitexp.core.secrets import MASK, secret_param
from gitexp.dvc.data import DataChange, collect, diff_data, dir_listing
from gitexp.errors import UsageError
from gitexp.report.ci import MARKER
from gitexp.store.git import Repo, iter_lines_z
from gitexp.store.snapshot import (
    State,
    Target,
    read_pointer_files,
    read_states,
    read_workspace_file,
    resolve_target,
)

MAX_MARKDOWN = 60_000  # GitHub's comment limit is 65,536 characters
LOWER_IS_BETTER = re.compile(r"(loss|error|err|rmse|mse|mae|mape|time|latency|perplexity|wer)")
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|f1|auc|precision|recall|r2|score|map|iou|bleu)")
HISTORY_DIRS = ("history", "dvclive/plots/metrics")


@dataclass(frozen=True)
class Check:
    expression: str
    passed: bool


@dataclass
class ReportData:
    base_label: str
    head_label: str
    base: State
    head: State
    data_changes: list[DataChange]
    runs: list[Entry]
    sort_metric: str | None
    best: str | None
    directions: dict[str, str]
    histories: dict[str, dict[str, list[float]]]  # line label -> metric -> values
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not c.passed for c in self.checks)


def direction(key: str, configured: dict[str, str]) -> str | None:
    """'min', 'max' or None (unknown): configuration first, then the metric's name."""
    leaf = key.rsplit(".", 1)[-1].lower()
    if key in configured or leaf in configured:
        return configured.get(key) or configured.get(leaf)
    if LOWER_IS_BETTER.search(leaf):
        return "min"
    if HIGHER_IS_BETTER.search(leaf):
        return "max"
    return None


def marker(key: str, old: Any, new: Any, directions: dict[str, str]) -> str:
    change = delta(old, new)
    goal = direction(key, directions)
    if change is None or change == 0 or goal is None:
        return "➖"
    better = change < 0 if goal == "min" else change > 0
    return "✅ better" if better else "❌ worse"


# --- gathering --------------------------------------------------------------------------------


def default_base(repo: Repo) -> str:
    """The merge base of HEAD with the default branch (origin/HEAD, else main or master)."""
    for candidate in ("refs/remotes/origin/HEAD", "refs/heads/main", "refs/heads/master"):
        if repo.resolve_commit(candidate):
            proc = repo.git(["merge-base", "HEAD", candidate], check=False)
            if proc.returncode == 0:
                return proc.stdout.decode().strip()
    raise UsageError("no default branch found (origin/HEAD, main, master): pass --base REV")


def _histories(repo: Repo, target: Target, reader: Any) -> dict[str, list[float]]:
    """Per-step metric files (TSV/CSV with a step column) under the history folders."""
    if target.rev is None:
        listing = repo.git(
            ["ls-files", "-z", "-c", "-o", "--exclude-standard", "--", *HISTORY_DIRS]
        ).stdout
    else:
        listing = repo.git(
            ["ls-tree", "-r", "-z", "--name-only", target.rev, "--", *HISTORY_DIRS]
        ).stdout
    paths = [p for p in iter_lines_z(listing) if p.endswith((".tsv", ".csv"))]
    if target.rev is None:
        blobs = [read_workspace_file(repo, p) for p in paths]
    else:
        blobs = reader.read_many([f"{target.rev}:{p}" for p in paths])
    found: dict[str, list[float]] = {}
    for path, data in zip(paths, blobs, strict=True):
        if data is None:
            continue
        sep = "\t" if path.endswith(".tsv") else ","
        rows = [line.split(sep) for line in data.decode("utf-8", "replace").splitlines() if line]
        if len(rows) < 2 or len(rows[0]) < 2:
            continue
        column = len(rows[0]) - 1
        values = []
        for row in rows[1:]:
            try:
                values.append(float(row[column]))
            except (ValueError, IndexError):
                values.append(float("nan"))
        found[rows[0][column]] = values
    return found


def gather(
    repo: Repo,
    base_spec: str | None,
    head_spec: str,
    sort_metric: str | None,
    checks: Sequence[str],
    runs: Sequence[Entry],
) -> ReportData:
    base_target = resolve_target(repo, base_spec) if base_spec else None
    if base_target is None:
        sha = default_base(repo)
        base_target = Target(label=sha[:10], rev=sha)
    head_target = resolve_target(repo, head_spec)
    config = load_config(lambda p: read_workspace_file(repo, p))
    with repo.batch_reader() as reader:
        base, head = read_states(repo, [base_target, head_target], reader)
        pointers = [read_pointer_files(repo, t, reader) for t in (base_target, head_target)]
        on_branch = _runs_on_branch(repo, base_target, head_target, runs)
        # Without --metric, runs are ranked by the head's first metric.
        sort_metric = sort_metric or next((k for f in head.metrics.values() for k in f), None)
        best = _best(on_branch, sort_metric, config.directions)
        histories = {}
        targets = [
            (f"base ({base_target.label})", base_target),
            (f"head ({head_target.label})", head_target),
        ]
        if best is not None:
            targets.append((f"best: {best.name}", Target(best.name, best.rev, best.name)))
        for label, target in targets:
            found = _histories(repo, target, reader)
            if found:
                histories[label] = found
    data_changes = diff_data(
        collect(pointers[0]), collect(pointers[1]), lambda e: dir_listing(repo.root, e.obj)
    )
    report = ReportData(
        base_label=base_target.label,
        head_label=head_target.label,
        base=base,
        head=head,
        data_changes=data_changes,
        runs=on_branch,
        sort_metric=sort_metric,
        best=best.name if best else None,
        directions=config.directions,
        histories=histories,
    )
    report.checks = [Check(expr, _check(expr, base, head)) for expr in checks]
    for state in (base, head):
        if not state.params:
            report.notes.append(f"{state.target.label} has no params file")
        if not state.metrics:
            report.notes.append(f"{state.target.label} has no metrics")
        report.notes += [f"{state.target.label}: {m}" for m in state.errors.values()]
        report.notes += [f"{state.target.label}: {m}" for m in state.notes.values()]
    return report


def _runs_on_branch(repo: Repo, base: Target, head: Target, runs: Sequence[Entry]) -> list[Entry]:
    """Runs whose base commit is in base..head (head included)."""
    assert base.rev and head.rev
    commits = set(repo.text(["rev-list", f"{base.rev}..{head.rev}"]).split()) | {head.rev}
    return [r for r in runs if r.base in commits]


def _flat(state: State, kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for flat in getattr(state, kind).values():
        merged.update(flat)
    return merged


def _metric_of(entry: Entry, key: str) -> Any:
    for flat in entry.metrics.values():
        if key in flat:
            return flat[key]
    return None


def _best(runs: Sequence[Entry], key: str | None, directions: dict[str, str]) -> Entry | None:
    scored = [r for r in runs if key and is_number(_metric_of(r, key))]
    if not scored or key is None:
        return None
    descending = direction(key, directions) != "min"
    return sorted(scored, key=lambda r: sort_key(_metric_of(r, key), descending))[0]


def _check(expression: str, base: State, head: State) -> bool:
    tree = parse_filter(expression)
    head_values = {**_flat(head, "params"), **_flat(head, "metrics")}
    base_values = {**_flat(base, "params"), **_flat(base, "metrics")}
    for key in keys_of(tree):
        known = base_values if key.startswith("base.") else head_values
        if key.removeprefix("base.") not in known:
            raise UsageError(f"--check '{expression}': unknown key '{key}'")

    def lookup(key: str) -> Any:
        if key.startswith("base."):
            return base_values.get(key[5:])
        return head_values.get(key)

    return bool(evaluate(tree, lookup))


# --- building ---------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int | None = None) -> str:
    def cell(value: Any) -> str:
        return escape_markdown(value if isinstance(value, str) else format_value(value))

    shown = rows if limit is None else rows[:limit]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"\n… {len(rows) - limit} more rows left out")
    return "\n".join(lines)


def _shown(key: str, value: Any) -> Any:
    return MASK if secret_param(key) else value


def sections(report: ReportData, run_rows: int | None = None) -> list[tuple[str, str]]:
    """(title, markdown body) in the report's order."""
    out: list[tuple[str, str]] = []
    old = {"params": report.base.params, "metrics": report.base.metrics}
    new = {"params": report.head.params, "metrics": report.head.metrics}
    metric_rows = []
    for c in diff_sections(old, new, show_all=True):
        if c.kind != "metrics":
            continue
        rel = relative(c.old, c.new)
        metric_rows.append(
            [
                c.key,
                c.old,
                c.new,
                delta(c.old, c.new),
                None if rel is None else f"{rel * 100:+.2f}%",
                marker(c.key, c.old, c.new, report.directions),
            ]
        )
    out.append(
        (
            "Metrics",
            _table(["metric", "base", "head", "change", "change %", ""], metric_rows)
            if metric_rows
            else "No metrics on either side.",
        )
    )
    if report.checks:
        rows = [[c.expression, "✅ pass" if c.passed else "❌ fail"] for c in report.checks]
        out.append(("Budgets", _table(["check", "result"], rows)))
    param_rows = [
        [c.path, c.key, _shown(c.key, c.old), _shown(c.key, c.new)]
        for c in diff_sections(old, new)
        if c.kind == "params"
    ]
    out.append(
        (
            "Params that changed",
            _table(["file", "param", "base", "head"], param_rows)
            if param_rows
            else "No params changed.",
        )
    )
    if report.data_changes:
        rows = [
            [
                d.path,
                d.old.hash[:12] if d.old else None,
                d.new.hash[:12] if d.new else None,
                d.old.size if d.old else None,
                d.new.size if d.new else None,
            ]
            for d in report.data_changes
        ]
        out.append(
            ("Data that changed", _table(["path", "base", "head", "base size", "head size"], rows))
        )
    out.append(("Runs on this branch", _runs_table(report, run_rows)))
    out.append(("Plots", _plots_markdown(report)))
    out.append(("How to reproduce", _reproduce(report)))
    return out


def _runs_table(report: ReportData, limit: int | None) -> str:
    if not report.runs:
        return "No runs were recorded on this branch."
    key = report.sort_metric
    runs = list(report.runs)
    if key:
        descending = direction(key, report.directions) != "min"
        runs.sort(key=lambda r: sort_key(_metric_of(r, key), descending))
    metric_keys = list(dict.fromkeys(k for r in runs for f in r.metrics.values() for k in f))
    rows = []
    for r in runs:
        star = "⭐ best" if r.name == report.best else ""
        rows.append([star, r.name, r.status, *(_metric_of(r, k) for k in metric_keys)])
    return _table(["", "run", "status", *metric_keys], rows, limit)


def _plots_markdown(report: ReportData) -> str:
    metrics = list(dict.fromkeys(m for h in report.histories.values() for m in h))
    if not metrics:
        return "No metric histories (per-step files under history/ or dvclive/plots/metrics/)."
    blocks = []
    for metric in metrics:
        series = [
            Series(label, tuple(h[metric])) for label, h in report.histories.items() if metric in h
        ]
        chart, legend = mermaid_chart(metric, series)
        blocks.append(f"{chart}\n\n{escape_markdown(legend)}")
    return "\n\n".join(blocks)


def _reproduce(report: ReportData) -> str:
    target = report.best or report.head_label
    return "\n".join(
        [
            "```sh",
            "gitexp pull                       # fetch the runs and their data",
            f"gitexp checkout {target}    # the workspace as the run was",
            f"gitexp reproduce {target}   # re-run it and compare the metrics",
            "```",
        ]
    )


def build_markdown(report: ReportData) -> str:
    def assemble(run_rows: int | None) -> str:
        title = (
            f"## gitexp report: {escape_markdown(report.head_label)} vs "
            f"{escape_markdown(report.base_label)}"
        )
        parts = [MARKER, title]
        if report.checks:
            verdict = "❌ budgets failed" if report.failed else "✅ all budgets met"
            parts.append(f"**{verdict}**")
        for heading, body in sections(report, run_rows):
            parts.append(f"### {heading}\n\n{body}")
        if report.notes:
            parts.append(
                "### Notes\n\n" + "\n".join(f"- {escape_markdown(n)}" for n in report.notes)
            )
        return "\n\n".join(parts) + "\n"

    text = assemble(None)
    rows = len(report.runs)
    while len(text) > MAX_MARKDOWN and rows > 0:
        rows = rows // 2
        text = assemble(rows)
    return text[:MAX_MARKDOWN]


def build_html(report: ReportData) -> str:
    """One self-contained page: no scripts, fonts or requests to anywhere."""
    body = [
        f"<h1>gitexp report: {html.escape(report.head_label)} vs "
        f"{html.escape(report.base_label)}</h1>"
    ]
    for heading, markdown in sections(report):
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if heading == "Plots":
            body.append(_plots_html(report))
        else:
            body.append(_markdown_to_html(markdown))
    if report.notes:
        body.append(
            "<h2>Notes</h2><ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
            + "</ul>"
        )
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:left}pre{background:#f4f4f4;padding:1em}"
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>gitexp report</title><style>{style}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def _plots_html(report: ReportData) -> str:
    metrics = list(dict.fromkeys(m for h in report.histories.values() for m in h))
    if not metrics:
        return "<p>No metric histories.</p>"
    return "".join(
        svg_chart(
            metric,
            [
                Series(label, tuple(h[metric]))
                for label, h in report.histories.items()
                if metric in h
            ],
        )
        for metric in metrics
    )


def _markdown_to_html(markdown: str) -> str:
    """The small markdown this module writes (tables, code blocks, text) as HTML."""
    out, rows, code = [], [], None
    for line in markdown.splitlines() + [""]:
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            code = []
        elif line.startswith("|"):
            if not set(line) <= {"|", "-", ":"}:
                rows.append(_unescape_cells(line))
        else:
            if rows:
                head, *rest = rows
                out.append(
                    "<table><tr>"
                    + "".join(f"<th>{c}</th>" for c in head)
                    + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest)
                    + "</table>"
                )
                rows = []
            if line.strip():
                out.append(f"<p>{html.escape(line)}</p>")
    return "".join(out)


def _unescape_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    # Cells were escaped for markdown (&lt; and friends already); keep them escaped for HTML.
    return [c.strip().replace("\\|", "|").replace("\\\\", "\\") for c in cells]


Warn = Callable[[str], None]
