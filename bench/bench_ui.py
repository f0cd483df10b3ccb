"""Speed of `gitexp ui`: start, first page of runs, sort, filter and a 100-run comparison
(histories included), for 1,000 and 10,000 runs; beside `mlflow ui` for the same runs (the
requests its pages make) when MLflow is installed, in this or another virtualenv.

    .venv/bin/python bench/bench_ui.py [--runs 1000 10000] [--steps 100] [--mlflow PYTHON]

Runs are one real `gitexp run` and copies of its shape written with one `git fast-import`
(params, metrics, two 100-step histories each), as a sweep would leave them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ENV, GITEXP, sh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ui_fixtures import API_TRAIN, UiServer, add_runs, grid  # noqa: E402

BROWSER_CONNECTIONS = 6  # what a browser opens to one host


def make_repo(root: Path, runs: int, steps: int) -> tuple[Path, list]:
    repo = root / "repo"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    (repo / "params.yaml").write_text(f"train:\n  lr: 0.1\n  epochs: {steps}\nseed: 1\n")
    (repo / "train.py").write_text(API_TRAIN)
    (repo / ".gitignore").write_text("/.gitexp/\n__pycache__/\n")
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "base"], repo)
    sh([*GITEXP, "run", "-n", "real-0", "--", sys.executable, "train.py"], repo)
    specs = grid(runs - 1, steps)
    add_runs(repo, "real-0", specs)
    return repo, specs


def timed(func) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def bench_gitexp(repo: Path, names: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    ui = UiServer(repo, env=env)
    figures = {"start (listening)": ui.startup}
    page = ui.json("/api/runs", {"limit": 100})
    figures["first page, from the command"] = time.perf_counter() - start
    assert page["total"] == len(names) + 1, page["total"]
    # the summaries of histories (min and max columns) are read in the background
    while ui.json("/api/runs", {"limit": 1})["histories_pending"]:
        time.sleep(0.05)
    figures["history min/max, from the command"] = time.perf_counter() - start
    figures["first page again"] = timed(lambda: ui.json("/api/runs", {"limit": 100}))[0]
    figures["sort all by a metric"] = timed(
        lambda: ui.json("/api/runs", {"limit": 100, "sort": "acc", "desc": 1})
    )[0]
    figures["filter all"] = timed(
        lambda: ui.json("/api/runs", {"limit": 100, "filter": "acc > 0.9 and loss < 0.1"})
    )[0]
    status, data = ui.post("/api/compare", {"runs": names[:100]})  # first: histories read
    assert status == 200 and len(data["runs"]) == 100
    figures["compare 100 runs (cold)"] = timed(
        lambda: ui.post("/api/compare", {"runs": names[100:200] or names[:100]})
    )[0]
    figures["compare 100 runs (warm)"] = timed(
        lambda: ui.post("/api/compare", {"runs": names[:100]})
    )[0]
    ui.stop()
    # started again: the run index under .git/ is kept, so only it is read
    start = time.perf_counter()
    ui = UiServer(repo, env=env)
    ui.json("/api/runs", {"limit": 100})
    figures["first page, started again"] = time.perf_counter() - start
    ui.stop()
    return figures


# --- MLflow -------------------------------------------------------------------------------------

MLFLOW_LOAD = """
import json, sys
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
experiment = client.create_experiment("bench")
for line in sys.stdin:
    spec = json.loads(line)
    ms = int(spec["started"] * 1000)
    run = client.create_run(experiment, run_name=spec["name"], start_time=ms)
    metrics = [Metric(k, v, ms, s) for k, vs in spec["histories"].items()
               for s, v in enumerate(vs)]
    params = [Param(k, str(v)) for k, v in spec["params"].items()]
    for i in range(0, max(1, len(metrics)), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000],
                         params=params if i == 0 else [])
    client.set_terminated(run.info.run_id)
print(experiment)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read()[:300]!r}") from None


def bench_mlflow(python: str, root: Path, specs: list) -> dict[str, float] | None:
    store = f"sqlite:///{root / 'mlflow.db'}"
    lines = "".join(
        json.dumps({"name": s.name, "started": s.started, "params": s.params,
                    "histories": s.histories}) + "\n"
        for s in specs
    )  # fmt: skip
    load = subprocess.run([python, "-c", MLFLOW_LOAD, store], input=lines.encode(),
                          capture_output=True, cwd=root)  # fmt: skip
    if load.returncode != 0:
        print(f"  (MLflow could not load the runs: {load.stderr.decode()[-300:]})")
        return None
    experiment = load.stdout.decode().split()[-1]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    server = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--backend-store-uri", store, "--port", str(port),
         "--workers", "1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    figures = {}
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                if time.perf_counter() - start > 120:
                    raise
                time.sleep(0.05)
        figures["start (listening)"] = time.perf_counter() - start
        search = {"experiment_ids": [experiment], "max_results": 100,
                  "order_by": ["attributes.start_time DESC"]}  # fmt: skip
        page = _call(f"{base}/api/2.0/mlflow/runs/search", search)
        figures["first page, from the command"] = time.perf_counter() - start
        figures["first page again"] = timed(
            lambda: _call(f"{base}/api/2.0/mlflow/runs/search", search)
        )[0]
        figures["sort all by a metric"] = timed(lambda: _call(
            f"{base}/api/2.0/mlflow/runs/search", {**search, "order_by": ["metrics.acc DESC"]}
        ))[0]  # fmt: skip
        figures["filter all"] = timed(lambda: _call(
            f"{base}/api/2.0/mlflow/runs/search",
            {**search, "filter": "metrics.acc > 0.9 and metrics.loss < 0.1"},
        ))[0]  # fmt: skip
        ids = [r["info"]["run_id"] for r in page["runs"]]

        def compare() -> None:
            # what the compare page asks: each run, then each metric's history of each run
            def one(run_id: str) -> None:
                _call(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}")
                for key in ("loss", "acc"):
                    _call(f"{base}/api/2.0/mlflow/metrics/get-history?run_id={run_id}"
                          f"&metric_key={key}")  # fmt: skip

            with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
                list(pool.map(one, ids))

        figures["compare 100 runs (cold)"] = timed(compare)[0]
        figures["compare 100 runs (warm)"] = timed(compare)[0]
    finally:
        os.killpg(server.pid, 15)
        server.wait()
    return figures


def find_mlflow(given: str | None) -> str | None:
    for python in [given, sys.executable]:
        if python and subprocess.run([python, "-c", "import mlflow"],
                                     capture_output=True).returncode == 0:  # fmt: skip
            return python
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--mlflow", metavar="PYTHON", help="a Python that has MLflow")
    args = parser.parse_args()
    mlflow = find_mlflow(args.mlflow)
    if mlflow is None:
        print("MLflow is not installed here (--mlflow PYTHON names a Python that has it)")
    for count in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            repo, specs = make_repo(root, count, args.steps)
            made = time.perf_counter() - start
            print(f"\n{count} runs, {args.steps} steps of 2 metrics each (made in {made:.1f} s)")
            ours = bench_gitexp(repo, [s.name for s in specs])
            theirs = bench_mlflow(mlflow, root, specs) if mlflow else None
            print(f"  {'':34} {'gitexp ui':>10} {'mlflow ui':>10}")
            for what, value in ours.items():
                other = f"{theirs[what]:9.3f}s" if theirs and what in theirs else f"{'-':>10}"
                print(f"  {what:34} {value:9.3f}s {other}")
            shutil.rmtree(root / "repo", ignore_errors=True)


if __name__ == "__main__":
    main()
