"""MLflow's tracking code runs on gitexp by changing the import: the iris RandomForest
tutorial end to end (compared column by column with real MLflow), MLflow's quickstart with a
signature and pyfunc, a nested hyperparameter search, a script that raises or is killed
without `with`, sensAI-style experiments, artifacts, and MLflow's filter grammar."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import git, make_repo, run_file, run_gitexp

# MLflow's tutorial shape (mlflow.org, "Tracking": a RandomForest on iris), written for MLflow.
# The only change a gitexp user makes is the import (swapped in by `as_gitexp`). MLflow 3.17
# refuses to save a RandomForest with its new default format, hence cloudpickle.
IRIS = """\
import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)

mlflow.set_experiment("iris-rf")
mlflow.start_run(run_name="rf-baseline")
n_estimators, max_depth = 50, 3
mlflow.log_param("n_estimators", n_estimators)
mlflow.log_param("max_depth", max_depth)
mlflow.log_param("criterion", "gini")
mlflow.log_param("min_impurity_decrease", 1e-05)
model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0)
model.fit(X_train, y_train)
accuracy = accuracy_score(y_test, model.predict(X_test))
mlflow.log_metric("accuracy", accuracy)
mlflow.log_metric("tiny", 1e-05)
for step, loss in enumerate([0.9, 0.5, float("nan")]):
    mlflow.log_metric("loss", loss, step=step)
mlflow.set_tag("team", "vision")
mlflow.sklearn.log_model(model, "model", serialization_format="cloudpickle")
run_id = mlflow.active_run().info.run_id
mlflow.end_run()

runs = mlflow.search_runs(filter_string="metrics.accuracy > 0.5", order_by=["start_time DESC"])
runs.to_pickle("frame.pkl")
print("runs found", len(runs), runs["status"][0])

result = mlflow.register_model(f"runs:/{run_id}/model", "iris-classifier")
print("registered version", result.version)
client = mlflow.MlflowClient()
client.set_registered_model_alias("iris-classifier", "champion", result.version)

loaded = mlflow.sklearn.load_model("models:/iris-classifier/1")
champion = mlflow.pyfunc.load_model("models:/iris-classifier@champion")
predictions = loaded.predict(X_test)
assert (predictions == champion.predict(X_test)).all()
print("accuracy of the registered model", accuracy_score(y_test, predictions))
"""


def as_gitexp(code: str) -> str:
    code = code.replace("import mlflow\nimport mlflow.sklearn\n", "import gitexp as mlflow\n"
                        "import gitexp.sklearn\n")  # fmt: skip
    return code.replace("import mlflow\n", "import gitexp as mlflow\n")


def script(repo: Path, code: str, env: dict[str, str] | None = None, timeout: float = 120):
    (repo / "job.py").write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, "job.py"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)  # fmt: skip


def record(repo: Path, run: str) -> dict:
    return json.loads(run_file(repo, run, ".gitexp/run.json"))


@pytest.fixture
def dvc_repo(repo: Path) -> Path:
    assert run_gitexp(repo, "init").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc")
    return repo


def test_iris_tutorial_end_to_end_and_as_real_mlflow(dvc_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    git(dvc_repo, "rm", "-q", "params.yaml")  # MLflow has no params file: compare like with like
    git(dvc_repo, "commit", "-q", "-m", "no params file")
    proc = script(dvc_repo, as_gitexp(IRIS))
    assert proc.returncode == 0, proc.stderr
    assert "runs found 1 FINISHED" in proc.stdout and "registered version 1" in proc.stdout
    assert "accuracy of the registered model 1.0" in proc.stdout
    rec = record(dvc_repo, "iris-rf/rf-baseline")
    assert rec["experiment"] == "iris-rf"
    assert rec["params"]["dvclive/params.yaml"]["min_impurity_decrease"] == 1e-05
    # The model folder went to DVC: only its pointer is in the run's commit.
    assert "dvclive/artifacts/model.dvc" in git(
        dvc_repo, "ls-tree", "-r", "--name-only", "refs/runs/iris-rf/rf-baseline"
    )
    assert git(dvc_repo, "tag", "-l").split() == ["iris-classifier#champion#1",
                                                   "iris-classifier@v0.0.1"]  # fmt: skip

    mlflow = pytest.importorskip("mlflow")
    del mlflow
    real = make_repo(tmp_path / "real")  # a git repository too, as the user's would be
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{real}/mlflow.db"}
    (real / ".gitignore").write_text("/.gitexp/\nmlflow.db\nmlruns/\n")
    proc = script(real, IRIS, env)
    assert proc.returncode == 0, proc.stderr
    import pandas

    ours = pandas.read_pickle(dvc_repo / "frame.pkl")
    theirs = pandas.read_pickle(real / "frame.pkl")
    assert sorted(ours.columns) == sorted(theirs.columns)
    for column in theirs.columns:
        assert ours[column].dtype == theirs[column].dtype, column
    differ = {"run_id", "experiment_id", "artifact_uri", "start_time", "end_time",
              "tags.mlflow.user", "tags.mlflow.source.git.commit"}  # fmt: skip
    for column in set(theirs.columns) - differ:
        a, b = ours[column][0], theirs[column][0]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), column


QUICKSTART = """\
import pandas as pd
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

import gitexp as mlflow
from gitexp.models import infer_signature

mlflow.set_tracking_uri(uri=".")
X, y = datasets.load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
params = {"solver": "lbfgs", "max_iter": 1000, "random_state": 8888}
lr = LogisticRegression(**params)
lr.fit(X_train, y_train)
accuracy = accuracy_score(y_test, lr.predict(X_test))
mlflow.set_experiment("MLflow Quickstart")
with mlflow.start_run():
    mlflow.log_params(params)
    mlflow.log_metric("accuracy", accuracy)
    mlflow.set_tag("Training Info", "Basic LR model for iris data")
    signature = infer_signature(X_train, lr.predict(X_train))
    model_info = mlflow.sklearn.log_model(
        sk_model=lr,
        name="iris_model",
        signature=signature,
        input_example=X_train,
        registered_model_name="tracking-quickstart",
    )
loaded_model = mlflow.pyfunc.load_model(model_info.model_uri)
predictions = loaded_model.predict(X_test)
result = pd.DataFrame(X_test, columns=datasets.load_iris().feature_names)
result["actual_class"] = y_test
result["predicted_class"] = predictions
print("agree", (result["actual_class"] == result["predicted_class"]).mean())
print("versions", [v.version for v in mlflow.MlflowClient().search_model_versions(
    "name = 'tracking-quickstart'")])
"""


def test_mlflow_quickstart_signature_pyfunc_and_registration(dvc_repo: Path) -> None:
    pytest.importorskip("sklearn")
    proc = script(dvc_repo, QUICKSTART)
    assert proc.returncode == 0, proc.stderr
    assert "agree 1.0" in proc.stdout and "versions ['1']" in proc.stdout
    (run,) = [r for r in git(dvc_repo, "for-each-ref", "--format=%(refname)").split()
              if r.startswith("refs/runs/MLflow-Quickstart/")]  # fmt: skip
    assert git(dvc_repo, "rev-parse", "tracking-quickstart@v0.0.1^{commit}") == git(
        dvc_repo, "rev-parse", run
    )
    # The MLmodel file is MLflow's: its pyfunc loader and the signature.
    local = dvc_repo / "dvclive" / "artifacts" / "iris_model"
    import yaml

    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert json.loads(mlmodel["signature"]["inputs"])[0]["type"] == "tensor"
    assert (local / "requirements.txt").read_text().count("scikit-learn==") == 1


NESTED = """\
import gitexp as mlflow

mlflow.set_experiment("search")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_params({"model": "svm", "cv": 3})
    mlflow.log_metric("parent_started", 1)
    best = None
    for c in [0.1, 1.0]:
        with mlflow.start_run(run_name=f"c-{c}", nested=True) as child:
            mlflow.log_param("C", c)
            mlflow.log_metric("score", c / 2)
            mlflow.log_metric("loss", 1 - c / 2, step=0)
            best = max(best or 0, c / 2)
    mlflow.log_metric("best_score", best)
print(mlflow.search_runs(filter_string="tags.mlflow.runName = 'parent'")["params.model"][0])
"""


def test_nested_search_keeps_the_parents_params(repo: Path) -> None:
    proc = script(repo, NESTED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svm"
    parent = record(repo, "search/parent")
    assert parent["params"]["dvclive/params.yaml"] == {"model": "svm", "cv": 3}
    assert parent["metrics"]["dvclive/metrics.json"] == {"parent_started": 1, "best_score": 0.5}
    for c in ("0.1", "1.0"):
        child = record(repo, f"search/c-{c}")
        assert child["parent"] == "search/parent"
        assert child["params"]["dvclive/params.yaml"] == {"C": float(c)}
        assert "best_score" not in run_file(repo, f"search/c-{c}", "dvclive/metrics.json")
    tree = git(repo, "ls-tree", "-r", "--name-only", "refs/runs/search/parent")
    assert "dvclive/plots/metrics/loss.tsv" not in tree  # a child's history stays its own
    assert (repo / "dvclive" / "params.yaml").read_text() == "model: svm\ncv: 3\n"


def test_a_script_that_raises_without_with_is_recorded_failed(repo: Path) -> None:
    proc = script(repo, """\
        import gitexp as mlflow
        mlflow.start_run(run_name="boom")
        mlflow.log_param("lr", 0.5)
        mlflow.log_metric("loss", 2.0)
        raise RuntimeError("diverged at step 3")
        """)  # fmt: skip
    assert proc.returncode == 1 and "RuntimeError: diverged at step 3" in proc.stderr
    rec = record(repo, "boom")
    assert rec["status"] == "failed"
    assert rec["params"]["dvclive/params.yaml"] == {"lr": 0.5}
    assert "RuntimeError: diverged at step 3" in run_file(repo, "boom", ".gitexp/run.log")
    shown = json.loads(run_gitexp(repo, "show", "--json", "boom").stdout)[0]
    assert shown["status"] == "failed"


def test_sigterm_without_with_records_the_run_interrupted(repo: Path) -> None:
    (repo / "job.py").write_text(textwrap.dedent("""\
        import time, gitexp as mlflow
        mlflow.start_run(run_name="long")
        mlflow.log_param("epochs", 1000)
        for epoch in range(1000):
            mlflow.log_metric("loss", 1 / (epoch + 1), step=epoch)
            if epoch == 2:
                open("started", "w").close()
            time.sleep(0.05)
        """))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "job.py"], cwd=repo, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (repo / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    rec = record(repo, "long")
    assert rec["status"] == "interrupted"
    assert "SIGTERM" in run_file(repo, "long", ".gitexp/run.log")
    assert len(run_file(repo, "long", "dvclive/plots/metrics/loss.tsv").splitlines()) >= 4


SENSAI = """\
import gitexp as mlflow

class MLflowExperiment:  # the shape of sensAI's tracking adapter
    def __init__(self, experiment_name):
        mlflow.set_experiment(experiment_name=experiment_name)

    def track(self, name, values):
        with mlflow.start_run(run_name=name):
            mlflow.log_metrics(values)
            mlflow.set_tags({"model": name})

tracker = MLflowExperiment("Wine Quality/regression")
tracker.track("xgb", {"RMSE": 0.61, "R2": 0.42})
tracker.track("xgb", {"RMSE": 0.58, "R2": 0.47})   # MLflow allows a repeated run name
exp = mlflow.get_experiment_by_name("Wine Quality/regression")
print(exp.experiment_id, [e.name for e in mlflow.search_experiments()])
frame = mlflow.search_runs(experiment_names=["Wine Quality/regression"],
                           order_by=["metrics.RMSE ASC"])
print(list(frame["run_id"]), list(frame["tags.mlflow.runName"]))
with mlflow.start_run(run_id=frame["run_id"][0]) as again:  # a recorded run, continued
    mlflow.log_metric("RMSE", 0.55)
print(again.info.run_id, mlflow.get_run(again.info.run_id).data.metrics)
mlflow.MlflowClient().set_tag(frame["run_id"][1], "reviewed", "yes")  # after it ended: a note
print(list(mlflow.search_runs(filter_string="tags.reviewed = 'yes'")["run_id"]))
"""


def test_sensai_style_experiments_group_runs(repo: Path) -> None:
    proc = script(repo, SENSAI)
    assert proc.returncode == 0, proc.stderr
    first, second, third, fourth = proc.stdout.splitlines()
    assert fourth == "['Wine-Quality/regression/xgb']"
    assert first == "Wine-Quality/regression ['Wine Quality/regression', 'Default']"
    assert third == "Wine-Quality/regression/xgb-resumed {'RMSE': 0.55, 'R2': 0.47}"
    assert second == ("['Wine-Quality/regression/xgb-2', 'Wine-Quality/regression/xgb'] "
                      "['xgb', 'xgb']")  # fmt: skip
    shown = json.loads(run_gitexp(repo, "show", "--json").stdout)
    assert {r["name"] for r in shown} == {"Wine-Quality/regression/xgb",
                                          "Wine-Quality/regression/xgb-2",
                                          "Wine-Quality/regression/xgb-resumed"}  # fmt: skip


def test_tracking_uri_a_server_is_refused_and_a_path_picks_the_repository(
    repo: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = script(elsewhere, f"""\
        import gitexp as mlflow
        try:
            mlflow.set_tracking_uri("http://127.0.0.1:5000")
        except Exception as exc:
            print("refused:", exc)
        mlflow.set_tracking_uri({repo.as_uri()!r})
        with mlflow.start_run(run_name="remote-dir"):
            mlflow.log_metric("x", 1)
        print(mlflow.get_tracking_uri(), len(mlflow.search_runs()))
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "refused: tracking URI 'http://127.0.0.1:5000' names a server" in proc.stdout
    assert proc.stdout.strip().endswith(f"{repo.as_uri()} 1")
    assert record(repo, "remote-dir")["metrics"]["dvclive/metrics.json"] == {"x": 1}


def test_artifacts_tables_images_and_inputs(dvc_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "report.txt"
    outside.write_text("made outside the repository\n")
    (dvc_repo / "data.csv").write_text("a,b\n1,2\n")
    assert run_gitexp(dvc_repo, "run", "-n", "prep", "--", "dvc", "add", "data.csv").returncode == 0
    proc = script(dvc_repo, f"""\
        import numpy, gitexp as mlflow
        with mlflow.start_run(run_name="arts") as run:
            mlflow.log_artifact({str(outside)!r})
            mlflow.log_artifact("params.yaml", artifact_path="config")
            mlflow.log_table({{"x": [1, 2], "y": ["a", "b"]}}, "tables/t.json")
            mlflow.log_image(numpy.zeros((4, 4, 3), dtype="uint8"), key="mask", step=2)
            mlflow.log_input("data.csv", context="training")
        client = mlflow.MlflowClient()
        print(sorted(f.path for f in client.list_artifacts(run.info.run_id)))
        local = client.download_artifacts(run.info.run_id, "tables/t.json")
        print(open(local).read().strip())
        print(mlflow.get_run("arts").inputs.dataset_inputs[0].dataset.source_type)
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listing, table, source_type = proc.stdout.splitlines()
    assert listing == "['config', 'images', 'report.txt', 'tables']"
    assert json.loads(table) == {"columns": ["x", "y"], "data": [[1, "a"], [2, "b"]]}
    assert source_type == "dvc"
    rec = record(dvc_repo, "arts")
    assert rec["datasets"][0]["path"] == "data.csv"
    assert rec["datasets"][0]["context"] == "training"
    assert len(rec["datasets"][0]["digest"]) == 32


def test_mlflow_filter_grammar() -> None:
    from gitexp.errors import UsageError
    from gitexp.tracking import filters

    values = {
        ("metrics", "acc"): 0.93, ("metrics", "tiny"): 1e-05, ("metrics", "loss"): math.nan,
        ("params", "model"): "rf", ("params", "lr"): "0.01", ("tags", "team name"): "Vision",
        ("attributes", "status"): "FINISHED",
    }  # fmt: skip

    def ok(text: str) -> bool:
        return filters.matches(filters.parse(text), lambda k: values.get((k.kind, k.name)))

    assert ok("metrics.acc > 0.9 and params.model = 'rf'")
    assert ok("metrics.tiny = 1e-05 AND metrics.tiny < 0.0001")
    assert not ok("metrics.loss < 1") and not ok("metrics.loss > 1")  # NaN matches nothing
    assert ok("params.model == 'rf'") and ok("params.model != 'svm'")
    assert ok("tags.`team name` LIKE 'Vis%'") and not ok("tags.`team name` LIKE 'vis%'")
    assert ok("tags.`team name` ILIKE 'vis%'") and ok('tags."team name" = "Vision"')
    assert ok("params.model IN ('rf', 'svm')") and ok("params.model NOT IN ('svm')")
    assert ok("attributes.status = 'FINISHED'") and ok("params.lr > 0.001")
    assert not ok("metrics.missing > 0") and not ok("params.missing != 'x'")
    for bad, reason in [("metrics.acc > 0.9 OR params.model = 'rf'", "no OR"),
                        ("metrics.acc >", "ends too early"), ("metrics.acc ~ 1", "cannot read"),
                        ("params.model IN 'rf'", "list in parentheses")]:  # fmt: skip
        with pytest.raises(UsageError, match=reason):
            filters.parse(bad)


def test_sklearn_autolog_gives_each_fit_a_run_with_its_model(repo: Path) -> None:
    pytest.importorskip("sklearn")
    proc = script(repo, """\
        import gitexp as mlflow, gitexp.sklearn
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import Ridge
        mlflow.sklearn.autolog()
        X, y = load_diabetes(return_X_y=True)
        Ridge(alpha=0.5).fit(X, y)
        run = mlflow.last_active_run()
        model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
        print(run.data.params["alpha"], sorted(run.data.metrics), model.alpha)
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "0.5 ['training_mean_absolute_error', 'training_mean_squared_error', "
        "'training_r2_score', 'training_root_mean_squared_error', 'training_score'] 0.5"
    )


def test_a_model_whose_data_is_only_on_the_dvc_remote_is_fetched(
    dvc_repo: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sklearn")
    storage, remote = tmp_path / "dvc-storage", tmp_path / "remote.git"
    subprocess.run(["dvc", "remote", "add", "-d", "store", str(storage)], cwd=dvc_repo, check=True)
    git(dvc_repo, "commit", "-q", "-am", "dvc remote")
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(dvc_repo, "remote", "add", "origin", str(remote))
    git(dvc_repo, "push", "-q", "origin", "main")
    proc = script(dvc_repo, """\
        import gitexp as mlflow, gitexp.sklearn
        from sklearn.linear_model import LinearRegression
        with mlflow.start_run(run_name="fit"):
            model = LinearRegression().fit([[0], [1]], [1, 3])
            mlflow.sklearn.log_model(model, name="model", registered_model_name="line")
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert run_gitexp(dvc_repo, "push").returncode == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    pulled = run_gitexp(clone, "pull", "--no-data")  # refs and tags, no data
    assert pulled.returncode == 0, pulled.stderr
    assert not (clone / ".dvc" / "cache").exists()
    proc = script(clone, """\
        import gitexp as mlflow, gitexp.sklearn
        print(mlflow.sklearn.load_model("models:/line/1").predict([[2]])[0].round(6))
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5.0"
