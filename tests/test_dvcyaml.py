"""gitexp's reading of dvc.yaml (foreach, matrix, vars, templates, wdir, cache flags, params
files) against DVC's own parser on the same files: DVC is the oracle."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from gitexp.core import dvcyaml
from gitexp.core.config import parse_config

PIPELINES = {
    "foreach-list": """
        stages:
          train:
            foreach: [small, big]
            do:
              cmd: python train.py ${item}
              outs:
              - models/${item}.pkl
              metrics:
              - scores/${item}.json:
                  cache: false
    """,
    "foreach-dict": """
        stages:
          fit:
            foreach:
              us: {lr: 0.1, region: west}
              eu: {lr: 0.2, region: east}
            do:
              cmd: python fit.py ${key} ${item.lr}
              outs:
              - out/${key}-${item.region}.bin
              plots:
              - plots/${key}.csv
    """,
    "matrix": """
        stages:
          grid:
            matrix:
              model: [cnn, mlp]
              seed: [1, 2]
            cmd: python grid.py ${item.model} ${item.seed}
            outs:
            - grid/${item.model}/${item.seed}
            metrics:
            - grid/${item.model}-${item.seed}.json:
                cache: false
    """,
    "vars-and-params": """
        vars:
          - config.yaml
          - suffix: v2
        stages:
          prepare:
            cmd: python prepare.py
            wdir: sub
            params:
            - prepare.split
            - ../extra.yaml:
              - seed
            outs:
            - data-${suffix}
            - report.html:
                cache: false
          evaluate:
            cmd: python evaluate.py ${threshold}
            outs:
            - eval-${model.name}
            metrics:
            - eval/metrics.json
        metrics: [summary.json]
        plots:
        - eval/roc.json:
            x: fpr
            y: tpr
    """,
}
FILES = {
    "config.yaml": "threshold: 0.5\nmodel:\n  name: forest\n",
    "params.yaml": "prepare:\n  split: 0.2\n",
    "extra.yaml": "seed: 1\n",
    "sub/params.yaml": "prepare:\n  split: 0.2\n",
}


def dvc_view(repo: Path) -> tuple[set[str], set[tuple[str, bool]]]:
    """(stage names, (output path, cached)) as DVC itself resolves the pipeline."""
    code = textwrap.dedent(
        """
        import json, os
        from dvc.repo import Repo
        with Repo(".") as r:
            stages = sorted(s.addressing for s in r.index.stages)
            outs = sorted({(os.path.relpath(o.fs_path, r.root_dir), bool(o.use_cache))
                           for s in r.index.stages for o in s.outs})
        print(json.dumps([stages, outs]))
        """
    )
    import json
    import sys

    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stages, outs = json.loads(proc.stdout)
    return set(stages), {(p, c) for p, c in outs}


@pytest.mark.parametrize("shape", list(PIPELINES))
def test_stages_and_outputs_match_dvc(tmp_path: Path, shape: str) -> None:
    repo = tmp_path / shape
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    text = textwrap.dedent(PIPELINES[shape])
    (repo / "dvc.yaml").write_text(text)
    for rel, content in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content)
    stages, outs = dvc_view(repo)
    read = lambda p: (repo / p).read_bytes() if (repo / p).is_file() else None  # noqa: E731
    pipeline = dvcyaml.parse(text.encode(), "dvc.yaml", read)
    assert set(pipeline.stages) == stages
    ours = {(o.path, o.cache) for o in pipeline.outputs()}
    assert ours == outs
    assert pipeline.uncached() == {p for p, cached in outs if not cached}


def test_params_and_metrics_files_of_a_pipeline() -> None:
    text = textwrap.dedent(PIPELINES["vars-and-params"]).encode()
    read = lambda p: FILES.get(p, "").encode() or None  # noqa: E731
    pipeline = dvcyaml.parse(text, "dvc.yaml", read)
    # relative to the stage's wdir, as DVC reads them; plain keys are the wdir's params.yaml
    assert pipeline.param_files() == ["sub/params.yaml", "extra.yaml"]
    assert pipeline.metric_files() == ["summary.json", "eval/metrics.json"]
    assert pipeline.top_plots == [("eval/roc.json", {"x": "fpr", "y": "tpr"})]
    config = parse_config(None, text, read)
    assert config.metrics_files[-2:] == ("summary.json", "eval/metrics.json")
    assert config.params_files[-2:] == ("sub/params.yaml", "extra.yaml")
    nested = dvcyaml.parse(b"stages:\n  s:\n    cmd: x\n    metrics: [m.json]\n",
                           "sub/dvc.yaml", read)  # fmt: skip
    assert nested.metric_files() == ["sub/m.json"]


def test_templates_fill_types_and_unknown_names_stay() -> None:
    context = {"item": {"lr": 0.1, "flags": [1, 2], "on": True}, "name": "x"}
    assert dvcyaml._fill("${item.lr}", context) == 0.1  # a whole template keeps its type
    assert dvcyaml._fill("lr-${item.lr}-${name}", context) == "lr-0.1-x"
    assert dvcyaml._fill("${item.flags[1]}", context) == 2
    assert dvcyaml._fill("f-${item.on}", context) == "f-true"  # booleans as DVC writes them
    assert dvcyaml._fill("${missing}", context) == "${missing}"
    assert dvcyaml._fill(r"\${name}", context) == r"\${name}"  # escaped
    assert dvcyaml._fill({"${name}": ["${name}"]}, context) == {"x": ["x"]}


def test_unreadable_pieces_are_left_out() -> None:
    assert dvcyaml.parse(b"[1, 2]", "dvc.yaml", lambda _p: None).stages == {}
    weird = b"stages:\n  a: 3\n  b:\n    foreach: 5\n    do: {cmd: x}\n  c:\n    matrix: 4\n"
    assert dvcyaml.parse(weird, "dvc.yaml", lambda _p: None).stages == {}
    broken_vars = b"vars: [missing.yaml, bad.yaml]\nstages: {s: {cmd: x, outs: [o]}}\n"
    read = lambda p: b"a: [" if p == "bad.yaml" else None  # noqa: E731
    assert list(dvcyaml.parse(broken_vars, "dvc.yaml", read).stages) == ["s"]
