"""A DVC project of the shape real ones have, built with real DVC (nothing downloaded):

- four stages prepare -> featurize -> train -> evaluate, each with its code file as a dep
  (`src/*.py`), params from two files (`params.yaml` and `config/eval.yaml`);
- `evaluate` writes DVCLive's layout into a cached output directory `eval/` (metrics.json,
  plots/metrics/*.tsv, plots/sklearn/roc.json and confusion.json), declared as top-level
  `metrics:` and `plots:` as DVCLive's docs show;
- a `foreach` stage writing one metrics file per class (`per_class/${item}.json`);
- a `cache: false` metrics file (`summary.json`) that `.gitignore` hides;
- a data file tracked by a `.dvc` file, and one lock entry written the DVC 2 way (no
  `hash: md5`, its object in the old cache layout);
- a stale lock entry for a stage no longer in dvc.yaml;
- two DVC experiments made with `dvc exp run`.

`build(path)` makes it once (about 15 s); tests copy it.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

PARAMS = textwrap.dedent(
    """\
    prepare:
      split: 0.2
      seed: 20170428
    featurize:
      max_features: 100
      ngrams: 1
    train:
      seed: 20170428
      n_est: 50
      min_split: 0.01
    """
)
EVAL_PARAMS = "threshold: 0.5\nlabels:\n- a\n- b\n"

SOURCES = {
    "src/prepare.py": """
        import os, random, sys, yaml
        p = yaml.safe_load(open("params.yaml"))["prepare"]
        rows = open(sys.argv[1]).read().split()
        random.Random(p["seed"]).shuffle(rows)
        os.makedirs("data/prepared", exist_ok=True)
        cut = int(len(rows) * p["split"])
        open("data/prepared/test.txt", "w").write("\\n".join(rows[:cut]))
        open("data/prepared/train.txt", "w").write("\\n".join(rows[cut:]))
    """,
    "src/featurize.py": """
        import json, os, yaml
        p = yaml.safe_load(open("params.yaml"))["featurize"]
        os.makedirs("data/features", exist_ok=True)
        for part in ("train", "test"):
            words = open(f"data/prepared/{part}.txt").read().split()
            counts = {w: words.count(w) for w in sorted(set(words))[: p["max_features"]]}
            json.dump(counts, open(f"data/features/{part}.json", "w"))
    """,
    "src/train.py": """
        import json, pickle, yaml
        p = yaml.safe_load(open("params.yaml"))["train"]
        features = json.load(open("data/features/train.json"))
        model = {"n_est": p["n_est"], "weights": {k: v / p["n_est"] for k, v in features.items()}}
        pickle.dump(model, open("model.pkl", "wb"))
    """,
    "src/evaluate.py": """
        import json, os, pickle, yaml
        model = pickle.load(open("model.pkl", "rb"))
        threshold = yaml.safe_load(open("config/eval.yaml"))["threshold"]
        n = model["n_est"]
        acc = round(0.5 + n / 250 - abs(threshold - 0.5) / 10, 6)
        os.makedirs("eval/plots/metrics", exist_ok=True)
        os.makedirs("eval/plots/sklearn", exist_ok=True)
        json.dump({"avg_prec": {"train": acc - 0.01, "test": acc - 0.05}, "roc_auc": acc},
                  open("eval/metrics.json", "w"))
        with open("eval/plots/metrics/loss.tsv", "w") as fh:
            fh.write("step\\tloss\\n")
            for step in range(5):
                fh.write(f"{step}\\t{1 / (step + 1) / n * 50:.6f}\\n")
        roc = [{"fpr": x / 4, "tpr": min(1.0, x / 4 + acc - 0.5), "threshold": 1 - x / 4}
               for x in range(5)]
        json.dump({"roc": roc}, open("eval/plots/sklearn/roc.json", "w"))
        json.dump([{"actual": a, "predicted": b} for a in "ab" for b in "ab"],
                  open("eval/plots/sklearn/confusion.json", "w"))
        json.dump({"n_est": n, "acc": acc}, open("summary.json", "w"))
    """,
    "src/per_class.py": """
        import json, os, pickle, sys
        model = pickle.load(open("model.pkl", "rb"))
        os.makedirs("per_class", exist_ok=True)
        score = round(len(sys.argv[1]) / 10 + model["n_est"] / 1000, 6)
        json.dump({"f1": score}, open(f"per_class/{sys.argv[1]}.json", "w"))
    """,
}

DVC_YAML = textwrap.dedent(
    """\
    stages:
      prepare:
        cmd: python src/prepare.py data/data.xml
        deps:
        - data/data.xml
        - src/prepare.py
        params:
        - prepare.seed
        - prepare.split
        outs:
        - data/prepared
      featurize:
        cmd: python src/featurize.py
        deps:
        - data/prepared
        - src/featurize.py
        params:
        - featurize.max_features
        - featurize.ngrams
        outs:
        - data/features
      train:
        cmd: python src/train.py
        deps:
        - data/features
        - src/train.py
        params:
        - train.seed
        - train.n_est
        - train.min_split
        outs:
        - model.pkl
      evaluate:
        cmd: python src/evaluate.py
        deps:
        - model.pkl
        - data/features
        - src/evaluate.py
        params:
        - config/eval.yaml:
          - threshold
        outs:
        - eval
        - summary.json:
            cache: false
      per_class:
        foreach:
        - a
        - bb
        do:
          cmd: python src/per_class.py ${item}
          deps:
          - model.pkl
          - src/per_class.py
          metrics:
          - per_class/${item}.json:
              cache: false
    metrics:
    - eval/metrics.json
    - summary.json
    plots:
    - eval/plots/metrics:
        x: step
    - eval/plots/sklearn/roc.json:
        template: simple
        x: fpr
        y: tpr
    - eval/plots/sklearn/confusion.json:
        template: confusion
        x: actual
        y: predicted
    """
)

STALE_STAGE = textwrap.indent(
    textwrap.dedent(
        """\
        old_stage:
          cmd: python old.py
          outs:
          - path: old-output.bin
            hash: md5
            md5: 0123456789abcdef0123456789abcdef
            size: 12
        """
    ),
    "  ",
)


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=repo, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stdout}{proc.stderr}")
    return proc.stdout


def _write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _to_legacy(repo: Path, out: str) -> None:
    """Rewrites the lock entry of `out` the way DVC 2 wrote it (no `hash: md5`) and moves its
    object to DVC 2's cache layout (`.dvc/cache/ab/cdef...`)."""
    lock = (repo / "dvc.lock").read_text().splitlines(keepends=True)
    for i, line in enumerate(lock):
        if line.strip() == f"- path: {out}":
            j = i + 1
            while j < len(lock) and not lock[j].lstrip().startswith("- "):
                if lock[j].strip() == "hash: md5":
                    del lock[j]
                    continue
                if lock[j].strip().startswith("md5:"):
                    digest = lock[j].split(":", 1)[1].strip()
                j += 1
            break
    (repo / "dvc.lock").write_text("".join(lock))
    new = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    old = repo / ".dvc" / "cache" / digest[:2] / digest[2:]
    old.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(new, old)


def build(repo: Path, env: dict[str, str] | None = None) -> Path:
    """Builds the project in `repo` with commands run in `env` (default: this process's)."""

    def sh(*args: str) -> str:
        return run(repo, *args, env=env)

    repo.mkdir(parents=True)
    sh("git", "init", "-q")
    _write(repo, "params.yaml", PARAMS)
    _write(repo, "config/eval.yaml", EVAL_PARAMS)
    for rel, code in SOURCES.items():
        _write(repo, rel, textwrap.dedent(code).lstrip())
    _write(repo, "dvc.yaml", DVC_YAML)
    _write(repo, ".gitignore", "/.gitexp/\n__pycache__/\n/summary.json\n")
    words = " ".join(f"w{i % 37}" for i in range(400))
    _write(repo, "data/data.xml", words)
    sh("dvc", "init", "-q")
    sh("dvc", "config", "core.autostage", "false")
    sh("dvc", "add", "-q", "data/data.xml")
    sh("git", "add", "-A")
    sh("git", "commit", "-q", "-m", "pipeline")
    sh("dvc", "repro", "-q")
    _to_legacy(repo, "model.pkl")
    lock = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(lock.replace("stages:\n", "stages:\n" + STALE_STAGE, 1))
    sh("git", "add", "-A")
    sh("git", "commit", "-q", "-m", "results")
    for name, value in (("exp-small", "20"), ("exp-big", "120")):
        sh("dvc", "exp", "run", "-q", "--temp", "-n", name, "-S", f"train.n_est={value}")
    return repo
