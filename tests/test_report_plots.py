"""Plots as DVC declares them (dvc.yaml, top level and per stage) and as DVCLive writes them,
read by the report and compared with what `dvc plots show --json` reads from the same
repository; drawn in both formats (issue 9, item 9)."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from browser import blocks
from conftest import git, run_gitexp
from gitexp.report.gather import _plots_of
from gitexp.store.git import Repo
from gitexp.store.snapshot import Target

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
DVC_YAML = textwrap.dedent(
    """\
    stages:
      train:
        cmd: python train.py
        plots:
          - history.tsv:
              cache: false
              x: step
      evaluate:
        foreach: [test, valid]
        do:
          cmd: python evaluate.py ${item}
          wdir: eval
          plots:
            - ${item}_loss.csv:
                cache: false
                x: step
    plots:
      - train.csv:
          x: epoch
          y: [train_loss, val_loss]
      - ROC:
          x: fpr
          y:
            eval/roc.json: tpr
      - dvclive/plots/metrics:
          x: step
      - dvclive/plots/sklearn/confusion_matrix.json:
          template: confusion
          x: actual
          y: predicted
          title: Confusion matrix
      - dvclive/plots/images
    """
)


def _write_plots(repo: Path, scale: float) -> None:
    (repo / "eval").mkdir(exist_ok=True)
    metrics = repo / "dvclive" / "plots" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    (repo / "dvclive" / "plots" / "sklearn").mkdir(exist_ok=True)
    (repo / "dvclive" / "plots" / "images").mkdir(exist_ok=True)
    # a Keras/Lightning-style CSV: two value columns, val_loss logged every other epoch
    (repo / "train.csv").write_text(
        "epoch,train_loss,val_loss\n"
        f"0,{1.0 * scale},{1.2 * scale}\n1,{0.5 * scale},\n2,{0.3 * scale},{0.6 * scale}\n"
    )
    roc = [{"fpr": f, "tpr": min(1.0, f * 3 * scale), "threshold": 1 - f} for f in (0, 0.1, 1)]
    (repo / "eval" / "roc.json").write_text(json.dumps({"roc": roc}))
    # DVCLive's own shapes: timestamp, step, value; sklearn pairs; an image
    (metrics / "acc.tsv").write_text("timestamp\tstep\tacc\n1\t0\t0.5\n2\t10\t1e-05\n3\t20\tnan\n")
    (repo / "dvclive/plots/sklearn/confusion_matrix.json").write_text(
        json.dumps(
            [
                {"actual": "0", "predicted": "0"},
                {"actual": "1", "predicted": "0"},
                {"actual": "1", "predicted": "1"},
            ]
        )  # fmt: skip
    )
    (repo / "dvclive/plots/images/sample.png").write_bytes(PNG)
    (repo / "history.tsv").write_text(f"step\tloss\n0\t{2 * scale}\n5\t{scale}\n")
    for split in ("test", "valid"):  # a foreach stage's plots, in its wdir
        (repo / "eval" / f"{split}_loss.csv").write_text(f"step,{split}_loss\n0,{scale}\n1,0.5\n")


@pytest.fixture
def dvc_repo(repo: Path) -> Path:
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _write_plots(repo, 1.0)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "plots")
    return repo


def _dvc_points(data: dict, plot_id: str, x: str, y: str) -> list[tuple[float, float]]:
    (plot,) = data[plot_id]
    rows = plot["content"]["data"]["values"]
    rows = [r for r in rows if r.get("field", y) == y]
    return [(float(r[x]), float(r[y])) for r in rows if str(r.get(y, "")).strip()]


def test_plots_read_as_dvc_plots_show_reads_them(dvc_repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"],
                          cwd=dvc_repo, capture_output=True, text=True, check=True)  # fmt: skip
    shown = json.loads(proc.stdout)["data"]
    repo = Repo.discover(dvc_repo)
    with repo.batch_reader() as reader:
        ours = {
            d.id: (d, data)
            for d, data in _plots_of(
                repo, Target("HEAD", git(dvc_repo, "rev-parse", "HEAD")), reader
            )
        }  # noqa: E501
    images = [i for i in shown if i.endswith(".png")]
    assert set(shown) - set(images) <= set(ours) and images == ["dvclive/plots/images/sample.png"]
    assert set(ours) == set(shown)  # the same plots, stage plots included
    assert {"history.tsv", "eval/test_loss.csv", "eval/valid_loss.csv"} <= set(ours)  # stages
    for plot_id, (definition, data) in ours.items():
        if definition.template == "image":
            assert data.images == {plot_id: PNG}
        elif definition.template == "confusion":
            rows = shown[plot_id][0]["content"]["data"]["values"]
            assert data.pairs == [(r["actual"], r["predicted"]) for r in rows]
        else:
            for curve in data.curves:
                expected = _dvc_points(shown, plot_id, curve.x_field, curve.name)
                got = list(zip(curve.xs, curve.ys, strict=True))
                assert len(got) == len(expected), (plot_id, curve.name)
                for (a, b), (c, d) in zip(got, expected, strict=True):
                    assert a == c and (b == d or (math.isnan(b) and math.isnan(d)))
    curves = {c.name: c for c in ours["train.csv"][1].curves}
    assert set(curves) == {"train_loss", "val_loss"}  # every value column, not the last only
    assert curves["val_loss"].xs == (0.0, 2.0)  # a gap is no point, not a filled value


def test_report_draws_dvc_plots_in_both_formats(dvc_repo: Path, mermaid, tmp_path) -> None:
    git(dvc_repo, "checkout", "-q", "-b", "feature")
    _write_plots(dvc_repo, 0.5)
    git(dvc_repo, "commit", "-q", "-am", "better")
    md = run_gitexp(dvc_repo, "report", "--base", "main")
    assert md.returncode == 0, md.stderr
    titles = [b.split('title "', 1)[1].split('"', 1)[0] for b in blocks(md.stdout)]
    assert {"train_loss", "val_loss", "tpr", "acc", "loss"} <= set(titles)
    for block in blocks(md.stdout):
        mermaid.render(block)
    assert "base (main) = head (feature): NaN from step 20" in md.stdout.replace("\\", "")
    confusion = "**Confusion matrix, base \\(main\\) = head \\(feature\\)** (rows: actual"
    assert confusion in md.stdout  # equal matrices shown once
    assert "| 1 | 1 | 1 |" in md.stdout  # actual 1: one predicted 0, one predicted 1
    assert "sample.png" in md.stdout and "the HTML report shows it" in md.stdout
    page = tmp_path / "r.html"
    html = run_gitexp(dvc_repo, "report", "--base", "main", "--format", "html", "-o", str(page))
    assert html.returncode == 0, html.stderr
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 2  # base and head
    assert "<title>actual 1, predicted 0: 1</title>" in text  # the confusion matrix
    assert "http://" not in text and "https://" not in text


def test_plots_inside_a_folder_dvc_keeps_are_drawn(repo: Path) -> None:
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    metrics = repo / "dvclive" / "plots" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "loss.tsv").write_text("step\tloss\n0\t1.5\n1\t0.7\n2\t0.2\n")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "dvclive"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvclive kept by DVC")
    assert "dvclive/plots" not in git(repo, "ls-files")  # only dvclive.dvc is in git
    proc = run_gitexp(repo, "report", "--base", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    (block,) = blocks(proc.stdout)
    assert 'title "loss"' in block and "line [1.5, 0.7, 0.2]" in block
