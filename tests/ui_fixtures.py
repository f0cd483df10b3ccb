"""What the UI tests and the UI bench share: many runs shaped like a real one (recorded with
one `git fast-import`), and `gitexp ui` started as a user starts it, on a free port."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

GITEXP = [sys.executable, "-m", "gitexp"]

# Training code as the Python API's users write it: per-step metrics, DVCLive's layout.
API_TRAIN = """\
import math, sys, time, yaml, gitexp
p = yaml.safe_load(open("params.yaml"))
lr, epochs = p["train"]["lr"], p["train"]["epochs"]
pause = float(sys.argv[1]) if len(sys.argv) > 1 else 0
with gitexp.start_run(name=sys.argv[2] if len(sys.argv) > 2 else None) as run:
    for step in range(epochs):
        loss = math.exp(-lr * (step + 1))
        gitexp.log_metrics({"loss": loss, "acc": 1 - loss / 2}, step=step)
        print(f"step {step} loss {loss:.4f}", flush=True)
        if pause:
            run.flush()
            time.sleep(pause)
"""


@dataclass
class RunSpec:
    name: str
    params: dict[str, Any]  # flat keys of params.yaml
    metrics: dict[str, Any]
    histories: dict[str, list[float]] = field(default_factory=dict)
    started: float = 1_780_000_000.0
    status: str = "success"
    tags: dict[str, str] = field(default_factory=dict)


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _yaml(doc: Mapping[str, Any], indent: str = "") -> str:
    """Block YAML of nested mappings of numbers and strings (yaml.safe_dump is too slow for
    10,000 files); values are JSON scalars, which YAML reads the same."""
    lines = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            lines.append(f"{indent}{key}:\n{_yaml(value, indent + '  ')}")
        else:
            lines.append(f"{indent}{key}: {json.dumps(value)}\n")
    return "".join(lines)


def _iso(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _tsv(name: str, values: list[float]) -> str:
    rows = "".join(f"{i}\t{'nan' if math.isnan(v) else repr(v)}\n" for i, v in enumerate(values))
    return f"step\t{name}\n{rows}"


def add_runs(repo: Path, template: str, specs: Iterable[RunSpec]) -> int:
    """Records runs like the run `template` (its record, with name, times, status, params,
    metrics and histories replaced) in one `git fast-import`. Returns how many."""

    def show(path: str) -> bytes:
        return subprocess.run(["git", "show", f"refs/runs/{template}:{path}"], cwd=repo,
                              capture_output=True, check=True).stdout  # fmt: skip

    base = json.loads(show(".gitexp/run.json"))
    stream: list[bytes] = []
    count = 0
    for spec in specs:
        record = dict(base)  # the fields replaced here are the ones that differ
        record.update(
            name=spec.name,
            status=spec.status,
            started=_iso(spec.started),
            ended=_iso(spec.started + 1.5),
            duration=1.5,
            tags=spec.tags,
            overrides=[f"{k}={v}" for k, v in spec.params.items()],
            params={"params.yaml": spec.params},
            metrics={"dvclive/metrics.json": spec.metrics},
        )
        files = {
            ".gitexp/run.json": json.dumps(record),
            ".gitexp/run.log": f"training {spec.name}\n",
            "params.yaml": _yaml(_nested(spec.params)),
            "dvclive/metrics.json": json.dumps(spec.metrics),
        }
        for metric, values in spec.histories.items():
            files[f"dvclive/plots/metrics/{metric}.tsv"] = _tsv(metric, values)
        message = f"run {spec.name}: python train.py\n\nStatus: {spec.status}\n".encode()
        stream.append(f"commit refs/runs/{spec.name}\n".encode())
        stream.append(f"committer gitexp <gitexp@localhost> {int(spec.started)} +0000\n".encode())
        stream.append(f"data {len(message)}\n".encode() + message)
        stream.append(f"from {record['base']}\n".encode())
        for path, text in files.items():
            data = text.encode()
            stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        stream.append(b"\n")
        count += 1
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream),
                   check=True, capture_output=True)  # fmt: skip
    return count


def grid(n: int, steps: int = 30, start: float = 1_780_000_000.0) -> list[RunSpec]:
    """Runs of a sweep over learning rates and seeds, with values of real shapes: a NaN loss,
    a learning rate of 1e-05, curves that fall with noise."""
    specs = []
    lrs = [1e-05, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    for i in range(n):
        lr, seed = lrs[i % len(lrs)], i // len(lrs)
        loss = [
            math.exp(-(lr * 50 + 0.02) * (s + 1)) + ((seed * 7 + s) % 5) * 0.002
            for s in range(steps)
        ]
        acc = [round(1 - v / 2, 6) for v in loss]
        final = float("nan") if i == 3 else round(loss[-1], 6)
        specs.append(
            RunSpec(
                name=f"grid/lr-{lr}-s{seed}",
                params={"train.lr": lr, "train.epochs": steps, "seed": seed},
                metrics={"loss": final, "acc": acc[-1]},
                histories={"loss": loss, "acc": acc},
                started=start + i * 60,
            )
        )
    return specs


class UiServer:
    """`gitexp ui --port 0` in a repository, as a user starts it; `.url` once it listens."""

    def __init__(self, repo: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*GITEXP, "ui", "--port", "0", *args],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=20)
        self.startup = time.perf_counter() - started
        if not line or "http://" not in line[0]:
            self.proc.kill()
            raise AssertionError(f"gitexp ui did not start: {line} {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.banner = line[0]
        self.url = next(w for w in line[0].split() if w.startswith("http://"))
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 80

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with exactly the path and headers given (nothing normalised)."""
        if params:
            path += "?" + urlencode(params, doseq=True)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        sent = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        conn.close()
        return result

    def json(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        status, _, body = self.request("GET", path, params, **kwargs)
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def post(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
        status, _, data = self.request("POST", path, body=body, **kwargs)
        return status, json.loads(data)

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user stops it; returns the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def wait_for(check: Any, timeout: float = 15.0, interval: float = 0.2) -> Any:
    """The first truthy result of `check()` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(interval)
