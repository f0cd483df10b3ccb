"""All of gitexp's git plumbing: one subprocess helper, revision resolution, batch reads,
temporary-index snapshots and atomic ref writes. No other module builds a git command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError, StateError, StorageError, UsageError

# Variables that would point git at another repository or index (RELIABILITY rule 6).
SCRUBBED_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
)

# Objects must be durable before the ref that points at them (RELIABILITY rule 4).
_WRITE_CONFIG = ("-c", "core.fsync=loose-object,reference")


class RefExistsError(GitexpError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"{ref} already exists")
        self.ref = ref


class GitCommandError(GitexpError):
    """A git command failed; the message is git's own first line of complaint."""

    exit_code = 3

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        # git puts the reason in the first "fatal:"/"error:" line; hints follow it.
        reason = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), None)
        reason = reason or (lines[0] if lines else f"git {args[0]} failed ({returncode})")
        super().__init__(reason.removeprefix("fatal: ").removeprefix("error: "))
        self.returncode = returncode
        self.stderr = stderr


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without variables that redirect git to another repository."""
    env = dict(os.environ if base is None else base)
    for name in SCRUBBED_VARS:
        env.pop(name, None)
    return env


def run_git(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    write: bool = False,
    check: bool = True,
    on_start: Callable[[int], None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command with an argv list and a scrubbed environment.

    Read-only calls get GIT_OPTIONAL_LOCKS=0 so they never refresh or lock the user's index.
    `on_start` gets git's process id as soon as it runs (a journal notes it, so recovery can
    wait for a git that outlived a killed gitexp).
    """
    full_env = clean_environ()
    full_env["GIT_TERMINAL_PROMPT"] = "0"
    if not write:
        full_env["GIT_OPTIONAL_LOCKS"] = "0"
    if env:
        full_env.update(env)
    argv = ["git", *(_WRITE_CONFIG if write else ()), *args]
    with subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        # Outside the terminal's process group, so a Ctrl-C meant for the user's command
        # cannot kill the git that records the run (row A5); gitexp handles the signal.
        start_new_session=True,
    ) as popen:
        if on_start is not None:
            on_start(popen.pid)
        out, err = popen.communicate(stdin)
    proc = subprocess.CompletedProcess(argv, popen.returncode, out, err)
    if check and proc.returncode != 0:
        stderr = err.decode("utf-8", "replace")
        if any(text in stderr for text in _NO_SPACE):
            raise StorageError(f"git {args[0]}: no space left on device")
        if _CANNOT_WRITE.search(stderr):
            raise StorageError(f"git {args[0]} cannot write: {_first_line(stderr)}")
        raise GitCommandError(args, proc.returncode, stderr)
    return proc


_NO_SPACE = ("No space left on device", "File too large", "Disk quota exceeded")
# A local write refused (a remote's "Permission denied (publickey)" is a remote error).
_CANNOT_WRITE = re.compile(
    r"Read-only file system|insufficient permission|Permission denied(?! \(publickey)"
)


def _first_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "").removeprefix("fatal: ").removeprefix("error: ")


def git_text(args: Sequence[str], cwd: str | os.PathLike[str], **kwargs: object) -> str:
    return run_git(args, cwd, **kwargs).stdout.decode("utf-8", "surrogateescape").strip()  # type: ignore[arg-type]


@dataclass(frozen=True)
class Repo:
    """A git working tree: where it is and where its git directories are."""

    root: Path
    git_dir: Path  # this worktree's own git dir (index, HEAD)
    common_dir: Path  # shared by all worktrees (objects, refs)

    @classmethod
    def discover(cls, cwd: str | os.PathLike[str] = ".") -> Repo:
        proc = run_git(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
            cwd,
            check=False,
        )
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace")
            if "dubious ownership" in stderr:
                raise StateError(
                    f"git refuses this repository (dubious ownership); trust it with "
                    f"'git config --global --add safe.directory {Path(cwd).resolve()}'"
                )
            if "must be run in a work tree" in stderr:
                raise StateError(
                    "no working tree here (a bare repository, or inside .git):"
                    " run gitexp in a clone's working tree"
                )
            raise StateError("not a git repository: run gitexp inside one (or 'git init' first)")
        lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
        if len(lines) < 3:
            raise StateError("gitexp needs a working tree, not a bare repository")
        root, git_dir, common = (Path(line) for line in lines[:3])
        if not common.is_absolute():
            common = (Path(cwd).resolve() / common).resolve()
        return cls(root=root, git_dir=git_dir, common_dir=common)

    @property
    def gitexp_dir(self) -> Path:
        """gitexp's private state for this working tree: run lock, journal, temporary files.

        Per worktree (not in the common dir), so runs in separate worktrees of one repository
        run in parallel, and a journal is always replayed into the tree it came from.
        """
        return self.git_dir / "gitexp"

    def git_dirs(self) -> tuple[Path, ...]:
        """Git's own directories for this worktree: never a place for workspace files."""
        return (self.git_dir, self.common_dir)

    def git(self, args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return run_git(args, self.root, **kwargs)  # type: ignore[arg-type]

    def text(self, args: Sequence[str], **kwargs: object) -> str:
        return git_text(args, self.root, **kwargs)

    # --- revisions -------------------------------------------------------------------------

    def head(self) -> str | None:
        """The commit HEAD points at, or None on an unborn branch."""
        proc = self.git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], check=False)
        return proc.stdout.decode().strip() or None

    def resolve_commit(self, rev: str) -> str | None:
        """The commit a revision names, or None. `rev` never reaches git as an option."""
        if rev.startswith("-"):
            raise UsageError(f"invalid revision '{rev}': it must not begin with '-'")
        proc = self.git(
            ["rev-parse", "-q", "--verify", "--end-of-options", f"{rev}^{{commit}}"], check=False
        )
        return proc.stdout.decode().strip() or None

    def in_progress_operation(self) -> str | None:
        """A merge, rebase, cherry-pick or revert that is under way, if any."""
        for marker, name in (
            ("MERGE_HEAD", "a merge"),
            ("rebase-merge", "a rebase"),
            ("rebase-apply", "a rebase or am"),
            ("CHERRY_PICK_HEAD", "a cherry-pick"),
            ("REVERT_HEAD", "a revert"),
        ):
            if (self.git_dir / marker).exists():
                return name
        return None

    def author_ident(self) -> str | None:
        """'Name <email>' of the configured author, or None when git has no identity."""
        proc = self.git(["var", "GIT_AUTHOR_IDENT"], check=False)
        if proc.returncode != 0:
            return None
        ident = proc.stdout.decode("utf-8", "replace").strip()
        return ident.rsplit(" ", 2)[0]  # drop the timestamp and zone

    # --- refs --------------------------------------------------------------------------------

    def list_refs(self, *prefixes: str) -> list[tuple[str, str]]:
        """(refname, commit) for every ref under the prefixes, in one process."""
        out = self.git(
            ["for-each-ref", "--format=%(refname)%00%(objectname)", "--end-of-options", *prefixes]
        ).stdout.decode("utf-8", "surrogateescape")
        pairs = []
        for line in out.splitlines():
            ref, _, oid = line.partition("\0")
            pairs.append((ref, oid))
        return pairs

    def ref_exists(self, ref: str) -> bool:
        proc = self.git(["show-ref", "--verify", "-q", "--end-of-options", ref], check=False)
        return proc.returncode == 0

    def create_ref(
        self, ref: str, oid: str, message: str, on_prepared: Callable[[], None] | None = None
    ) -> None:
        """Create ref in one transaction that fails instead of overwriting an existing ref.

        `on_prepared` runs while the ref is locked and checked but not yet visible; if gitexp
        dies there, git aborts the transaction and no ref appears.
        """
        self.update_refs([f"create {ref} {oid}"], message, on_prepared)

    def create_refs(self, refs: Mapping[str, str], message: str) -> None:
        """Create many refs (ref -> oid) in one transaction: all of them or none."""
        self.update_refs([f"create {ref} {oid}" for ref, oid in refs.items()], message)

    def delete_refs(self, refs: Mapping[str, str], message: str = "gitexp") -> None:
        """Delete many refs (ref -> expected oid) in one transaction: all of them or none."""
        self.update_refs([f"delete {ref} {oid}" for ref, oid in refs.items()], message)

    def pack_refs(self) -> None:
        """Moves loose refs into packed-refs, as `git gc` does: listing 100,000 loose refs
        costs git seconds. git locks each ref it prunes, so a ref another process is
        creating at the same time is never rewritten."""
        self.git(["pack-refs", "--all"], write=True, check=False)

    def delete_ref(self, ref: str, old_oid: str) -> None:
        self.delete_refs({ref: old_oid})

    def update_refs(
        self, commands: Sequence[str], message: str, on_prepared: Callable[[], None] | None = None
    ) -> None:
        """One `update-ref --stdin` transaction of `create`/`delete` commands. Ref names come
        from for-each-ref or pass the run-name rules, so none holds a space or newline."""
        if not commands:
            return
        for command in commands:
            if "\n" in command or "\0" in command:
                raise UsageError(f"invalid ref update {command!r}")
        env = clean_environ()
        proc = subprocess.Popen(
            ["git", *_WRITE_CONFIG, "update-ref", "-m", message, "--stdin"],
            cwd=self.root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            script = "start\n" + "".join(f"{c}\n" for c in commands) + "prepare\n"
            proc.stdin.write(script.encode("utf-8", "surrogateescape"))
            proc.stdin.flush()
            ready = proc.stdout.readline() and proc.stdout.readline()  # start: ok, prepare: ok
            if ready.strip() == b"prepare: ok":
                if on_prepared:
                    on_prepared()
                proc.stdin.write(b"commit\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        stderr = proc.stderr.read()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode != 0:
            message_text = stderr.decode("utf-8", "replace")
            if "reference already exists" in message_text:
                found = re.search(r"'([^']+)': reference already exists", message_text)
                raise RefExistsError(found.group(1) if found else commands[0].split()[1])
            if "No space left on device" in message_text:
                raise StorageError("git update-ref: no space left on device")
            raise GitCommandError(["update-ref"], proc.returncode, message_text)

    def committer_ident(self) -> tuple[str, str] | None:
        """(name, email) of the configured committer, or None when git has no identity."""
        proc = self.git(["var", "GIT_COMMITTER_IDENT"], check=False)
        if proc.returncode != 0:
            return None
        ident = proc.stdout.decode("utf-8", "replace").strip().rsplit(" ", 2)[0]
        name, _, email = ident.rpartition(" <")
        return name, email.rstrip(">")

    def create_tag(
        self, name: str, target: str, message: str, tagger: tuple[str, str], timestamp: int
    ) -> str:
        """An annotated tag written byte for byte (tagger time in UTC, the message without a
        trailing newline, as GTO writes them), created only if the name is free."""
        if name.startswith("-") or "\n" in name or "\n" in "".join(tagger):
            raise UsageError(f"invalid tag name {name!r}")
        body = (
            f"object {target}\ntype commit\ntag {name}\n"
            f"tagger {tagger[0]} <{tagger[1]}> {timestamp} +0000\n\n{message}"
        )
        oid = self.text(["hash-object", "-t", "tag", "-w", "--stdin"], stdin=body.encode(),
                        write=True)  # fmt: skip
        try:
            self.create_ref(f"refs/tags/{name}", oid, f"gitexp tag {name}")
        except RefExistsError:
            raise UsageError(f"tag '{name}' already exists") from None
        return oid

    def list_tags(self, *patterns: str, points_at: str | None = None) -> list[TagInfo]:
        """Annotated tags matching the patterns (under refs/tags/), with their commit and
        tagger, in one process; lightweight tags are left out."""
        fields = ["refname:strip=2", "objecttype", "*objectname", "taggerdate:unix",
                  "taggername", "taggeremail"]  # fmt: skip
        fmt = "%00".join(f"%({f})" for f in fields)
        at = [f"--points-at={points_at}"] if points_at else []
        out = self.git(
            ["for-each-ref", f"--format={fmt}", *at, "--end-of-options",
             *([f"refs/tags/{p}" for p in patterns] or ["refs/tags/"])]
        ).stdout.decode("utf-8", "surrogateescape")  # fmt: skip
        tags = []
        for line in out.splitlines():
            name, kind, commit, when, tagger, email = (line.split("\0") + [""] * 6)[:6]
            if kind == "tag" and when.isdigit():
                tags.append(TagInfo(name, commit, int(when), tagger, email.strip("<>")))
        return tags

    def list_tag_targets(self, *patterns: str) -> list[tuple[str, str]]:
        """(tag name, commit) of annotated tags, reading no tag object when refs are packed
        (packed-refs keeps the peeled commit)."""
        out = self.git(
            ["for-each-ref", "--format=%(refname:strip=2)%00%(*objectname)", "--end-of-options",
             *(f"refs/tags/{p}" for p in patterns)]
        ).stdout.decode("utf-8", "surrogateescape")  # fmt: skip
        pairs = (line.partition("\0") for line in out.splitlines())
        return [(name, commit) for name, _, commit in pairs if commit]

    def try_update_refs(self, commands: Sequence[str], message: str) -> bool:
        """`update_refs`, returning False when a ref was not as the commands expect (it
        exists, or has another value: another process got there first)."""
        try:
            self.update_refs(commands, message)
        except RefExistsError:
            return False
        except GitCommandError as exc:
            lost = ("but expected", "unable to resolve", "File exists", "cannot lock ref")
            if any(reason in exc.stderr for reason in lost):
                return False
            raise
        return True

    # --- objects -----------------------------------------------------------------------------

    def write_blob_data(self, files: Mapping[str, bytes]) -> dict[str, str]:
        """Write contents as blobs with one git process; returns path -> blob id."""
        if not files:
            return {}
        tmp_dir = self.gitexp_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        temps = [tmp_dir / f"blob.{os.getpid()}.{i}" for i in range(len(files))]
        try:
            for temp, data in zip(temps, files.values(), strict=True):
                temp.write_bytes(data)
            listing = "".join(f"{t}\n" for t in temps).encode()
            out = self.git(["hash-object", "-w", "--stdin-paths"], stdin=listing, write=True)
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        return dict(zip(files, out.stdout.decode().split(), strict=True))

    def write_commits(
        self, tree: str, parent: str, messages: Sequence[str], env: Mapping[str, str]
    ) -> list[str]:
        """Commits of one tree and parent, one per message, written by one git process (what
        `commit_tree` does once per process). `env` may set the identity as for commit-tree."""
        if not messages:
            return []
        author, committer = (
            self.text(["var", f"GIT_{who}_IDENT"], env=env) for who in ("AUTHOR", "COMMITTER")
        )
        header = f"tree {tree}\nparent {parent}\nauthor {author}\ncommitter {committer}\n\n"
        tmp_dir = self.gitexp_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        temps = [tmp_dir / f"commit.{os.getpid()}.{i}" for i in range(len(messages))]
        try:
            for temp, message in zip(temps, messages, strict=True):
                temp.write_bytes((header + message).encode())
            listing = "".join(f"{t}\n" for t in temps).encode()
            out = self.git(["hash-object", "-t", "commit", "-w", "--stdin-paths"], stdin=listing,
                           write=True)  # fmt: skip
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        return out.stdout.decode().split()

    @contextlib.contextmanager
    def temp_index(self) -> Iterator[TempIndex]:
        """A copy of the index to build a run's tree in: the user's index is never written,
        and files unchanged since the user's last `git add` are not hashed again."""
        tmp_dir = self.gitexp_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        path = tmp_dir / f"index.{os.getpid()}"
        real_index = self.git_dir / "index"
        try:
            if real_index.exists():
                shutil.copyfile(real_index, path)
            yield TempIndex(self, path)
        finally:
            path.unlink(missing_ok=True)

    def commit_tree(
        self, tree: str, parents: str | Sequence[str], message: str, env: Mapping[str, str]
    ) -> str:
        """A commit object; commit-tree runs no hooks, so user hooks never fire."""
        args = ["commit-tree", tree]
        for parent in [parents] if isinstance(parents, str) else parents:
            args += ["-p", parent]
        return self.text(args, stdin=message.encode(), env=env, write=True)

    def index_tree(self) -> str:
        """The tree of what is staged, written from a copy of the index: `git write-tree` on
        the index itself would rewrite it (its cache-tree extension)."""
        with self.temp_index() as index:
            return index.write_tree()

    def gitpython_commit(self, rev: str) -> Any:
        """A GitPython `git.Commit`, for API users who work with git objects. GitPython is
        imported here only (about 75 ms), never on gitexp's own paths, and is only read."""
        import git

        return git.Repo(self.root).commit(rev)

    def batch_reader(self) -> BatchReader:
        return BatchReader(self.root)


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str  # what the tag points at (peeled)
    time: int  # tagger time, seconds since the epoch
    tagger: str
    email: str


class TempIndex:
    """The steps of building a tree of the working tree as it is on disk."""

    def __init__(self, repo: Repo, path: Path) -> None:
        self.repo = repo
        self.env = {"GIT_INDEX_FILE": str(path)}

    def _pathspec(self, excludes: Iterable[str]) -> list[str]:
        # git add fails on an exclude pathspec that names an ignored file, so those (which
        # add -A leaves out anyway) are not passed.
        excludes = [e for e in excludes if os.path.lexists(self.repo.root / e)]
        ignored = set()
        if excludes:
            proc = self.repo.git(
                ["check-ignore", "-z", "--no-index", "--stdin"],
                stdin="".join(f"{e}\0" for e in excludes).encode(),
                env=self.env,
                check=False,
            )
            ignored = set(iter_lines_z(proc.stdout))
        kept = [e for e in excludes if e not in ignored]
        return ["--", ".", *(f":(top,exclude,literal){e}" for e in kept)]

    def changed_files(self, excludes: Iterable[str]) -> dict[str, bool]:
        """Modified tracked files and untracked files that git does not ignore, each mapped to
        whether it is untracked."""
        out = self.repo.git(
            ["ls-files", "-z", "-t", "-m", "-o", "--exclude-standard", *self._pathspec(excludes)],
            env=self.env,
        ).stdout
        found: dict[str, bool] = {}
        for entry in iter_lines_z(out):
            tag, path = entry[:1], entry[2:]
            found[path] = found.get(path, False) or tag == "?"
        return dict(sorted(found.items()))

    def add_all(self, excludes: Iterable[str]) -> None:
        """Tracked and untracked files as on disk; ignored files and `excludes` left out."""
        self.repo.git(["add", "-A", *self._pathspec(excludes)], env=self.env, write=True)

    def add_blobs(self, blobs: Mapping[str, str]) -> None:
        """Put blobs (path -> id) at paths in the index, whatever is on disk there."""
        if blobs:
            info = "".join(f"100644 {oid}\t{path}\n" for path, oid in blobs.items())
            self.repo.git(
                ["update-index", "--add", "--index-info"],
                stdin=info.encode(),
                env=self.env,
                write=True,
            )

    def write_tree(self) -> str:
        return self.repo.text(["write-tree"], env=self.env, write=True)


class BatchReader:
    """Reads many objects through one `git cat-file --batch` process."""

    def __init__(self, cwd: Path) -> None:
        env = clean_environ()
        env["GIT_OPTIONAL_LOCKS"] = "0"
        self._proc: subprocess.Popen[bytes] | None = None
        self._cwd = cwd
        self._env = env

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            self._proc = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self._cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self._env,
            )
        return self._proc

    def read(self, spec: str) -> bytes | None:
        """The content of `<rev>:<path>` or an object id; None when it does not exist."""
        return self.read_many([spec])[0]

    def read_many(self, specs: Sequence[str]) -> list[bytes | None]:
        """Blob contents in order; None where a spec is missing or is not a blob."""
        return [
            found[1] if found and found[0] == b"blob" else None
            for found in self.read_objects(specs)
        ]

    def read_objects(self, specs: Sequence[str]) -> list[tuple[bytes, bytes] | None]:
        """(type, content) of each object (a tree's content is git's binary listing); None
        when it does not exist. All requests are written first, then the answers are read in
        order: a writer thread keeps a long request list from filling the pipe first.
        """
        if not specs:
            return []
        for spec in specs:
            if "\n" in spec:
                raise UsageError(f"invalid object name {spec!r}")
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        payload = "".join(f"{s}\n" for s in specs).encode("utf-8", "surrogateescape")
        import threading

        writer = threading.Thread(target=_write_all, args=(proc.stdin, payload))
        writer.start()
        results: list[tuple[bytes, bytes] | None] = []
        try:
            for _ in specs:
                header = proc.stdout.readline()
                if not header:
                    raise GitexpError("git cat-file ended unexpectedly")
                parts = header.split()
                # "<spec> missing" or "<spec> ambiguous", where a spec may hold spaces
                if len(parts) != 3 or not parts[2].isdigit():
                    results.append(None)
                    continue
                size = int(parts[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after the content
                results.append((parts[1], data))
        finally:
            writer.join()
        return results

    def object_types(self, oids: Sequence[str]) -> dict[str, str]:
        """oid -> 'commit', 'tree', 'blob' or 'tag' for the objects that exist (one
        `cat-file --batch-check` process)."""
        if not oids:
            return {}
        proc = subprocess.run(
            ["git", "cat-file", "--batch-check"], cwd=self._cwd, env=self._env,
            input="".join(f"{o}\n" for o in oids).encode(), capture_output=True, check=False,
        )  # fmt: skip
        found = {}
        for line in proc.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) == 3:
                found[parts[0]] = parts[1]
        return found

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(stream: object, payload: bytes) -> None:
    stream.write(payload)  # type: ignore[attr-defined]
    stream.flush()  # type: ignore[attr-defined]


def iter_lines_z(data: bytes) -> Iterator[str]:
    for item in data.split(b"\0"):
        if item:
            yield item.decode("utf-8", "surrogateescape")
