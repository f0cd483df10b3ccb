"""The bundled example: a small neural network on scikit-learn's handwritten digits.

Reads params.yaml, trains for `train.epochs` epochs and logs with gitexp's Python API:
- per-epoch accuracy and loss (dvclive/plots/metrics/acc.tsv, loss.tsv);
- the final accuracy, F1 score and loss (dvclive/metrics.json);
- the trained model, model.pkl, as an artifact (binary, so DVC stores it, not git).
Under `gitexp run` the logging joins that run; run alone, the script records a run itself.
The digits ship with scikit-learn, so nothing is downloaded.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import gitexp


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    data, train, model_params = params["data"], params["train"], params["model"]

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=data["test_size"], random_state=data["seed"], stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    model = MLPClassifier(
        hidden_layer_sizes=tuple(model_params["layers"]),
        learning_rate_init=float(train["lr"]),
        alpha=float(train["alpha"]),
        batch_size=int(train["batch_size"]),
        random_state=data["seed"],
    )
    classes = np.unique(y)
    with gitexp.start_run():
        for epoch in range(int(train["epochs"])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(x_train, y_train, classes=classes)
            acc = accuracy_score(y_test, model.predict(x_test))
            loss = log_loss(y_test, model.predict_proba(x_test), labels=classes)
            gitexp.log_metrics({"acc": round(acc, 6), "loss": round(loss, 6)}, step=epoch)
            print(f"epoch {epoch + 1:3d}  loss {loss:.4f}  acc {acc:.4f}")

        predictions = model.predict(x_test)
        f1 = round(float(f1_score(y_test, predictions, average="macro")), 6)
        gitexp.log_metric("f1", f1)
        with open("model.pkl", "wb") as fh:
            pickle.dump(model, fh)
        gitexp.log_artifact("model.pkl")
        print(f"acc {acc:.4f}  f1 {f1:.4f}  loss {loss:.4f}")


if __name__ == "__main__":
    main()
