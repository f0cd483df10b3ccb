"""Running the user's command: live output that is also kept as a log, signals, timing.

The command runs in gitexp's process group, so Ctrl-C at a terminal reaches it directly, as
it would without gitexp; SIGTERM and SIGHUP sent to gitexp alone are passed on. On Linux the
command is also told to stop if gitexp itself is killed (row A2).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from gitexp.core.secrets import redact, secret_values
from gitexp.errors import UsageError

LOG_HEAD_BYTES = 1 * 1024 * 1024
LOG_TAIL_BYTES = 9 * 1024 * 1024
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)
_HANDLED = (signal.SIGINT, *_FORWARDED)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int  # as a shell reports it: 128 + N when killed by signal N
    interrupted_by: str | None  # 'SIGINT', 'SIGTERM', 'SIGHUP' when the run was interrupted
    started: float
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started


class LogCapture:
    """Keeps the first and the last megabytes of a stream; the middle of a huge log is cut
    with a marker (row R5), so memory stays bounded whatever the command prints."""

    def __init__(self, mirror: Callable[[bytes], None] | None = None) -> None:
        self.mirror = mirror  # also gets every chunk: the live log a viewer follows
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self.lock:
            if self.mirror is not None:
                self.mirror(chunk)
            room = LOG_HEAD_BYTES - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if not chunk:
                return
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size > LOG_TAIL_BYTES:
                first = self.tail.popleft()
                self.tail_size -= len(first)
                self.dropped += len(first)

    def getvalue(self) -> bytes:
        """The log as stored: values of secret-looking environment variables are replaced
        by *** (row S10), since the log is pushed with the run."""
        secrets = secret_values(os.environ)
        tail = b"".join(self.tail)
        if not self.dropped:
            return redact(bytes(self.head) + tail, secrets)
        marker = f"\n[gitexp: {self.dropped} bytes of output left out]\n".encode()
        return redact(bytes(self.head), secrets) + marker + redact(tail, secrets)


def find_executable(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Refuses a command that cannot be started, before anything is written."""
    if not argv:
        raise UsageError(
            "no command given: write it after '--', e.g. gitexp run -- python train.py"
        )
    program = argv[0]
    if shutil.which(program, path=env.get("PATH")) is None:
        raise UsageError(f"command not found: '{program}'")


def _set_parent_death_signal() -> None:
    # PR_SET_PDEATHSIG (1): the kernel sends SIGTERM to the command if gitexp dies.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _pump(source: BinaryIO, sink: BinaryIO, log: LogCapture) -> None:
    while chunk := source.read1(65536):  # type: ignore[attr-defined]
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # our terminal went away; keep the log anyway
        log.write(chunk)


class SignalGuard:
    """Records SIGINT/SIGTERM/SIGHUP for the length of a run instead of dying of them, so the
    run is recorded and the workspace restored; a second Ctrl-C cannot cut that short (A5)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        child = self.child
        if signum in _FORWARDED and child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def ignore(self) -> None:
        """From here on, ignore the signals: the command has ended and the run is being
        recorded (row A5). An ignored signal also stays ignored in a git process between its
        fork and its move to a session of its own (git.run_git), so none can kill it."""
        for signum in _HANDLED:
            signal.signal(signum, signal.SIG_IGN)

    def __enter__(self) -> SignalGuard:
        for signum in _HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None


def run_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: LogCapture, guard: SignalGuard
) -> CommandResult:
    """Runs the command to its end, streaming its output to ours and into `log`."""
    started = time.time()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
    )
    guard.child = proc
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, log), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, log), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    from gitexp.store.faults import fault_point

    fault_point("command-started")
    returncode = proc.wait()
    for pump in pumps:
        pump.join()
    ended = time.time()
    exit_code = 128 - returncode if returncode < 0 else returncode
    interrupted = guard.name
    if interrupted is None and returncode in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP):
        interrupted = signal.Signals(-returncode).name
    return CommandResult(exit_code, interrupted, started, ended)


def child_environment(run_name: str) -> dict[str, str]:
    """The user's environment, plus what tells the command it runs under gitexp."""
    env = dict(os.environ)
    env["GITEXP_RUN_NAME"] = run_name
    env.setdefault("PYTHONUNBUFFERED", "1")  # so Python output streams live through the pipe
    return env
