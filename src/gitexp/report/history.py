"""A metric over a branch's commits (`gitexp report --history A..B`), from the runs recorded
on each commit: runs are commits whose parent is the commit they ran on, so history answers
"which commit moved the metric" with no tracker at all. `gitexp bisect` reads commits the
same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from gitexp.core.charts import Chart, Colours, Series
from gitexp.core.metrics import is_number
from gitexp.errors import UsageError
from gitexp.report.ci import MARKER
from gitexp.report.gather import flat, metric_keys
from gitexp.report.html import STYLE
from gitexp.report.html import table as html_table
from gitexp.report.markdown import cell, table
from gitexp.report.mermaid import mermaid_chart
from gitexp.report.svg import line_chart
from gitexp.store.git import Repo
from gitexp.store.index import run_records
from gitexp.store.records import RunInfo

MAX_COMMITS = 1000


@dataclass(frozen=True)
class CommitPoint:
    """A commit of the range, oldest first, and the run that speaks for it (if any)."""

    sha: str
    subject: str
    run: RunInfo | None

    def value(self, key: str) -> Any:
        if self.run is None or self.run.record is None:
            return None
        return flat(self.run.record.get("metrics") or {}).get(key)


def commits(repo: Repo, spec: str) -> list[tuple[str, str]]:
    """(sha, subject) of the commits a range names (`A..B`, or one revision for its
    history), oldest first, following first parents as a branch's history reads."""
    if spec.startswith("-") or "\n" in spec:
        raise UsageError(f"invalid commit range '{spec}'")
    proc = repo.git(
        ["log", "--first-parent", "--reverse", f"--max-count={MAX_COMMITS}",
         "--format=%H%x00%s", "--end-of-options", spec, "--"],
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise UsageError(f"unknown commit range '{spec}': use REV..REV, e.g. main~50..main")
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    return [tuple(line.split("\0", 1)) for line in lines if "\0" in line]  # type: ignore[misc]


def run_for(runs: Sequence[RunInfo], metric: str | None = None) -> RunInfo | None:
    """The run that speaks for a commit: one that has `metric` first, then a successful run
    of the commit as it is (no param overrides), newest first."""

    def rank(run: RunInfo) -> tuple[int, int, int, str]:
        record = run.record or {}
        return (
            0 if metric is None or CommitPoint("", "", run).value(metric) is not None else 1,
            0 if record.get("status") == "success" else 1,
            0 if not record.get("overrides") else 1,
            "".join(chr(0x10FFFF - ord(c)) for c in str(record.get("started", ""))),
        )

    return min(runs, key=rank) if runs else None


def commit_points(repo: Repo, spec: str, metric: str | None = None) -> list[CommitPoint]:
    """The commits of a range, each with the run that speaks for it (for `metric`)."""
    listed = commits(repo, spec)
    with repo.batch_reader() as reader:
        runs = [RunInfo(*row) for row in run_records(repo, reader)]  # through the run index
    by_base: dict[str, list[RunInfo]] = {}
    for run in runs:
        base = (run.record or {}).get("base")
        if base:
            by_base.setdefault(base, []).append(run)
    return [
        CommitPoint(sha, subject, run_for(by_base.get(sha, []), metric)) for sha, subject in listed
    ]


def history_chart(points: Sequence[CommitPoint], key: str, colour: Colours) -> Chart:
    xs = [i for i, p in enumerate(points) if is_number(p.value(key))]
    series = colour.paint(Series.of(key, [float(points[i].value(key)) for i in xs], xs))
    missing = len(points) - len(xs)
    notes = (f"{missing} of {len(points)} commits have no run with {key}",) if missing else ()
    return Chart(
        f"{key} by commit",
        (series,),
        x_label="commit",
        y_label=key,
        notes=notes,
        x_names=tuple(p.sha[:7] for p in points),
    )


def history_keys(points: Sequence[CommitPoint], metric: str | None) -> list[str]:
    keys = metric_keys([(p.run.record or {}).get("metrics") or {} for p in points if p.run])
    if metric is None:
        return keys
    if metric not in keys and not any(p.value(metric) is not None for p in points):
        raise UsageError(
            f"unknown metric '{metric}': the runs in this range have {', '.join(keys) or 'none'}"
        )
    return [metric]


def _rows(points: Sequence[CommitPoint], keys: Sequence[str]) -> list[list[Any]]:
    return [
        [p.sha[:7], p.subject[:60], p.run.name if p.run else None, *(p.value(k) for k in keys)]
        for p in reversed(points)
    ]


def history_markdown(spec: str, points: Sequence[CommitPoint], keys: Sequence[str]) -> str:
    colour = Colours(keys)
    parts = [MARKER, f"## gitexp history: {cell(', '.join(keys) or 'metrics')} over {cell(spec)}"]
    with_runs = sum(1 for p in points if p.run)
    parts.append(f"{len(points)} commits, {with_runs} with a recorded run.")
    for key in keys:
        drawn = mermaid_chart(history_chart(points, key, colour))
        if drawn is not None:
            notes = "".join(f"  \n_{cell(n)}_" for n in drawn.notes)
            parts.append(f"{drawn.block}\n\n{cell(drawn.legend)}{notes}")
    parts.append(table(["commit", "subject", "run", *keys], _rows(points, keys)))
    return "\n\n".join(parts) + "\n"


def history_html(spec: str, points: Sequence[CommitPoint], keys: Sequence[str]) -> str:
    colour = Colours(keys)
    title = f"gitexp history: {', '.join(keys) or 'metrics'} over {spec}"
    body = [f"<h1>{escape(title)}</h1>"]
    with_runs = sum(1 for p in points if p.run)
    body.append(f"<p>{len(points)} commits, {with_runs} with a recorded run.</p>")
    body += [line_chart(history_chart(points, key, colour)) for key in keys]
    body.append(html_table(["commit", "subject", "run", *keys], _rows(points, keys)))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
