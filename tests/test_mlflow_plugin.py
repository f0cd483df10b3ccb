"""MLflow's own UI and client on git-stored runs, through the plugins of `gitexp[mlflow]`:
MLflow's server app (what `mlflow ui` runs) answers its UI's REST calls from gitexp's runs,
and `MlflowClient("gitexp:...")` reads them (experiments, params, metrics with histories,
tags, artifacts); writes are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run_gitexp

pytest.importorskip("mlflow")

LOGGED = """\
import gitexp as mlflow
mlflow.set_experiment("mnist sweep")
with mlflow.start_run(run_name="lr-0.1", description="first try") as run:
    mlflow.log_params({"lr": 0.1, "optimizer": "sgd"})
    for step, loss in enumerate([0.9, 0.4, 0.2]):
        mlflow.log_metric("loss", loss, step=step)
    mlflow.set_tag("team", "vision")
    mlflow.log_text("hello from the run", "notes/readme.txt")
    with mlflow.start_run(run_name="fold-1", nested=True):
        mlflow.log_metric("acc", 0.5)
"""


@pytest.fixture
def logged(repo: Path) -> Path:
    assert run_gitexp(repo, "init").returncode == 0
    (repo / "job.py").write_text(LOGGED)
    proc = subprocess.run([sys.executable, "job.py"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return repo


def test_mlflow_client_reads_gitexp_runs(logged: Path, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""\
        import json, mlflow
        from mlflow import MlflowClient
        uri = "gitexp://{logged}"
        c = MlflowClient(uri)
        exps = {{e.name: e.experiment_id for e in c.search_experiments()}}
        runs = c.search_runs([exps["mnist sweep"]], "params.optimizer = 'sgd'")
        run = c.get_run(runs[0].info.run_id)
        child = c.search_runs([exps["mnist sweep"]], "metrics.acc > 0.1")[0]
        history = [(m.step, m.value) for m in c.get_metric_history(run.info.run_id, "loss")]
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                    artifact_path="notes/readme.txt",
                                                    tracking_uri=uri, dst_path={str(tmp_path)!r})
        try:
            c.create_run(exps["mnist sweep"])
        except Exception as exc:
            refused = str(exc)
        print(json.dumps({{"exps": exps, "run_id": run.info.run_id, "params": run.data.params,
                          "tags": run.data.tags, "status": run.info.status, "history": history,
                          "parent": child.data.tags["mlflow.parentRunId"],
                          "artifact": open(local).read(), "refused": refused}}))
        """)  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["exps"] == {"mnist sweep": "mnist-sweep", "Default": "0"}
    assert out["run_id"] == "mnist-sweep_1lr-0_21"  # '/' and '.' escaped for MLflow's ids
    assert out["params"] == {
        "lr": "0.1",
        "optimizer": "sgd",
        "train.lr": "0.1",
        "train.epochs": "3",
        "seed": "1",
    }  # and the repository's params.yaml
    assert out["status"] == "FINISHED"
    assert out["tags"]["team"] == "vision" and out["tags"]["mlflow.note.content"] == "first try"
    assert out["history"] == [[0, 0.9], [1, 0.4], [2, 0.2]]
    assert out["parent"] == out["run_id"]
    assert out["artifact"] == "hello from the run"
    assert "read-only" in out["refused"]


UI_CALLS = """\
import json, os, sys
os.environ["_MLFLOW_SERVER_FILE_STORE"] = sys.argv[1]  # what `mlflow ui --backend-store-uri` sets
from mlflow.server import app

ui = app.test_client()
api = "/ajax-api/2.0/mlflow"
out = {}
out["experiments"] = ui.post(f"{api}/experiments/search", json={"max_results": 10}).get_json()
out["runs"] = ui.post(f"{api}/runs/search", json={
    "experiment_ids": ["mnist-sweep"], "filter": "metrics.loss < 0.5",
    "order_by": ["attributes.start_time DESC"]}).get_json()
run_id = out["runs"]["runs"][0]["info"]["run_id"]
out["history"] = ui.get(f"{api}/metrics/get-history",
                        query_string={"run_id": run_id, "metric_key": "loss"}).get_json()
out["files"] = ui.get(f"{api}/artifacts/list",
                      query_string={"run_id": run_id, "path": "notes"}).get_json()
got = ui.get("/get-artifact", query_string={"run_uuid": run_id, "path": "notes/readme.txt"})
out["artifact"] = [got.status_code, got.get_data(as_text=True)]
created = ui.post(f"{api}/runs/create", json={"experiment_id": "mnist-sweep"})
out["create"] = [created.status_code, created.get_data(as_text=True)]
page = ui.get("/")
out["page"] = [page.status_code, "<html" in page.get_data(as_text=True).lower()]
print(json.dumps(out))
"""


def test_mlflow_ui_rest_calls_on_gitexp_runs(logged: Path) -> None:
    """The requests MLflow's UI makes, answered by MLflow's own server app (as `mlflow ui
    --backend-store-uri gitexp:///repo` runs it) through the plugin."""
    proc = subprocess.run([sys.executable, "-c", UI_CALLS, f"gitexp://{logged}"], cwd=logged,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    names = {e["name"]: e["experiment_id"] for e in out["experiments"]["experiments"]}
    assert names == {"mnist sweep": "mnist-sweep", "Default": "0"}
    (run,) = out["runs"]["runs"]
    assert run["info"]["run_name"] == "lr-0.1" and run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["lr"] == "0.1" and params["optimizer"] == "sgd"
    assert [m["value"] for m in out["history"]["metrics"]] == [0.9, 0.4, 0.2]
    assert [f["path"] for f in out["files"]["files"]] == ["notes/readme.txt"]
    assert out["artifact"] == [200, "hello from the run"]
    assert out["create"][0] >= 400 and "read-only" in out["create"][1]
    assert out["page"] == [200, True]  # the UI's own page
