"""A model registry on git tags, in GTO's format byte for byte, so `gto` and gitexp read and
write the same registry and it travels with `git push --tags`:

    iris@v0.0.1          registers version v0.0.1 of 'iris' at a commit (a run's commit)
    iris@v0.0.1!         deregisters it
    iris#prod#3          assigns stage 'prod' to the version at that commit (3: a counter)
    iris#prod!#4         unassigns it
    iris@deprecated      deprecates the model

Tags are annotated, with GTO's messages; their tagger times strictly increase per model
(GTO orders events by them, to the second). The state is computed as GTO computes it (a
stage names the version most recently assigned to it that still holds it). MLflow's view
maps onto it: version N is the N-th registered version, an alias is a stage.

Reading one model is one `git for-each-ref` over its tags: about 30 ms for 10,000 tags.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gitexp.core.gto import NAME_RE, STAGE_RE, TAG_RE, VERSION_RE, semver_key
from gitexp.errors import StateError, UsageError
from gitexp.store.git import Repo, TagInfo
from gitexp.tracking.entities import ModelVersion, RegisteredModel

FALLBACK_TAGGER = ("gitexp", "gitexp@localhost")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"invalid model name {name!r}: use letters, digits, '-', '_' and '/', starting and "
            "ending with a letter or digit (GTO's rule), e.g. 'iris-classifier'"
        )
    return name


def check_stage(repo: Repo, stage: str) -> str:
    """A stage (MLflow's alias) must fit GTO's rule and the `.gto` file's list, if any."""
    if not isinstance(stage, str) or not STAGE_RE.match(stage):
        raise UsageError(
            f"invalid stage or alias {stage!r}: use letters, digits, '-', '_' and '/', starting "
            "and ending with a letter or digit"
        )
    allowed = _configured_stages(repo)
    if allowed is not None and stage not in allowed:
        raise UsageError(f"stage '{stage}' is not in .gto's stages: {', '.join(allowed)}")
    return stage


def _configured_stages(repo: Repo) -> list[str] | None:
    from gitexp.core import yamlio

    path = repo.root / ".gto"
    if not path.is_file():
        return None
    config = yamlio.load(path.read_bytes(), ".gto")
    stages = config.get("stages") if isinstance(config, dict) else None
    return [str(s) for s in stages] if isinstance(stages, list) else None


def _tag_name(name: str) -> str:
    return name.replace(":", "=")


@dataclass(frozen=True)
class Event:
    action: str  # register, deregister, assign, unassign, deprecate
    tag: str
    time: int
    commit: str
    tagger: str
    email: str
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def parse_tag(tag: TagInfo) -> tuple[str, Event] | None:
    match = TAG_RE.match(tag.name)
    if not match:
        return None
    artifact = match["artifact"].replace("=", ":")
    counter = int(match["counter"]) if match["counter"] else None
    common = {
        "tag": tag.name,
        "time": tag.time,
        "commit": tag.commit,
        "tagger": tag.tagger,
        "email": tag.email,
        "counter": counter,
    }
    if match["deprecated"]:
        return artifact, Event("deprecate", **common)
    if match["version"]:
        action = "deregister" if match["cancel"] == "!" else "register"
        return artifact, Event(action, version=match["version"], **common)
    if match["stage"]:
        action = "unassign" if match["cancel"] == "!" else "assign"
        return artifact, Event(action, stage=match["stage"], **common)
    return artifact, Event("create", **common)


@dataclass
class Version:
    version: str  # v<semver>, or the commit for a stage assigned to an unregistered commit
    commit: str
    registrations: list[Event] = field(default_factory=list)
    deregistrations: list[Event] = field(default_factory=list)
    stages: dict[str, list[Event]] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return bool(self.registrations)

    @property
    def active(self) -> bool:
        direct = sorted(self.registrations + self.deregistrations, key=lambda e: e.time)
        if direct:
            return direct[-1].action == "register"
        return bool(self.stages)

    @property
    def created(self) -> int:
        events = self.registrations or [e for s in self.stages.values() for e in s]
        return max(e.time for e in events) if events else 0

    def active_stages(self) -> dict[str, int]:
        """stage -> time of its latest assignment, for stages whose latest event assigns."""
        found = {}
        for stage, events in self.stages.items():
            ordered = sorted(events, key=lambda e: e.time)
            if ordered and ordered[-1].action == "assign":
                found[stage] = max(e.time for e in ordered if e.action == "assign")
        return found


@dataclass
class Model:
    """One model's registry state, computed from its tags as GTO computes it."""

    name: str
    versions: list[Version] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Indexes, so 10,000 tags are read in linear time.
    _by_version: dict[str, Version] = field(default_factory=dict)
    _by_commit: dict[str, Version] = field(default_factory=dict)

    @classmethod
    def from_events(cls, name: str, events: list[Event]) -> Model:
        model = cls(name, events=sorted(events, key=lambda e: e.time))
        for event in model.events:  # versions first, as GTO's managers run
            if event.action in ("register", "deregister"):
                version = model.find(version=event.version, commit=event.commit, create=True)
                assert version is not None
                kind = (
                    version.registrations
                    if event.action == "register"
                    else (version.deregistrations)
                )
                kind.append(event)
        for event in model.events:
            if event.action in ("assign", "unassign"):
                version = model.find(commit=event.commit, create=True)
                assert version is not None and event.stage is not None
                version.stages.setdefault(event.stage, []).append(event)
        return model

    def find(
        self, version: str | None = None, commit: str | None = None, create: bool = False
    ) -> Version | None:
        if version is not None:
            found = self._by_version.get(version)
            if found is not None and commit is not None and found.commit != commit:
                found = None
        else:
            found = self._by_commit.get(commit or "")
        if found is None and create:
            assert commit is not None
            found = Version(version or commit, commit)
            self.versions.append(found)
            self._by_version.setdefault(found.version, found)
            self._by_commit[commit] = found
        return found

    @property
    def deprecated(self) -> bool:
        return bool(self.events) and self.events[-1].action == "deprecate"

    @property
    def max_counter(self) -> int:
        return max((e.counter for e in self.events if e.counter is not None), default=0)

    @property
    def last_time(self) -> int:
        return max((e.time for e in self.events), default=0)

    def registered(self, active_only: bool = True) -> list[Version]:
        """Registered versions, highest semver first."""
        found = [v for v in self.versions if v.registered and (v.active or not active_only)]
        return sorted(found, key=lambda v: semver_key(v.version), reverse=True)

    def latest(self) -> Version | None:
        found = self.registered()
        return found[0] if found else None

    def numbered(self) -> list[Version]:
        """MLflow's integer versions: registered versions in the order they were first
        registered (a deregistered version keeps its number)."""
        found = [v for v in self.versions if v.registered]
        return sorted(
            found, key=lambda v: (min(e.time for e in v.registrations), semver_key(v.version))
        )

    def number_of(self, version: Version) -> int | None:
        for n, candidate in enumerate(self.numbered(), 1):
            if (candidate.version, candidate.commit) == (version.version, version.commit):
                return n
        return None

    def stages(self) -> dict[str, Version]:
        """Each stage's version, as `gto show` (sort by timestamp, one version a stage)."""
        candidates = [v for v in self.versions if v.active]
        candidates = sorted(candidates, key=lambda v: v.created)[::-1]
        assignments = []
        for version in candidates:
            active = version.active_stages()
            for stage in sorted(active, key=lambda s: active[s]):
                assignments.append((active[stage], stage, version))
        assignments = sorted(assignments, key=lambda a: a[0])[::-1]
        found: dict[str, Version] = {}
        for _, stage, version in assignments:
            found.setdefault(stage, version)
        return found


def load(repo: Repo, name: str) -> Model:
    """One model's state: one for-each-ref over its tags."""
    tag = _tag_name(check_name(name))
    events = []
    for info in repo.list_tags(f"{tag}@*", f"{tag}#*"):
        parsed = parse_tag(info)
        if parsed and parsed[0] == name:
            events.append(parsed[1])
    return Model.from_events(name, events)


def stage_version(repo: Repo, name: str, stage: str) -> Version | None:
    """The version in a stage, from one `for-each-ref` that reads no tag object: the stage's
    tags and the version tags, with their commits (peeled in packed refs). GTO's rule: the
    latest assignment that still holds, on a version that is not deregistered. "Latest" is
    by the tags' counter, which gto and gitexp both raise by one per event, so it orders
    them as their times do. 10,000 tags: about 50 ms."""
    tag = _tag_name(check_name(name))
    assign, unassign, version_prefix = f"{tag}#{stage}#", f"{tag}#{stage}!#", f"{tag}@"
    last: dict[str, tuple[int, bool]] = {}  # commit -> (counter of its last event, assigns)
    versions: list[tuple[str, str]] = []
    for ref, commit in repo.list_tag_targets(f"{assign}*", f"{unassign}*", f"{version_prefix}*"):
        if ref.startswith(version_prefix):
            versions.append((ref, commit))
            continue
        assigns = ref.startswith(assign)
        counter = ref[len(assign if assigns else unassign) :]
        if counter.isdigit() and (commit not in last or last[commit][0] < int(counter)):
            last[commit] = (int(counter), assigns)
    holders = sorted((n, c) for c, (n, assigns) in last.items() if assigns)
    for _, commit in reversed(holders):
        here = [ref[len(version_prefix) :] for ref, c in versions if c == commit]
        registered = [v for v in here if VERSION_RE.match(v)]
        active = [v for v in registered if f"{v}!" not in here]
        if registered and not active:
            continue  # deregistered: GTO skips it
        found = Version(active[-1] if active else commit, commit)
        found.stages[stage] = []
        return found
    return None


def load_all(repo: Repo) -> list[Model]:
    grouped: dict[str, list[Event]] = {}
    for info in repo.list_tags():
        parsed = parse_tag(info)
        if parsed:
            grouped.setdefault(parsed[0], []).append(parsed[1])
    return [Model.from_events(name, events) for name, events in sorted(grouped.items())]


# --- writing ----------------------------------------------------------------------------------


def _write(repo: Repo, model: Model, tag: str, commit: str, message: str) -> Event:
    """One annotated tag, its tagger time after every earlier event of the model."""
    tagger = repo.committer_ident() or FALLBACK_TAGGER
    when = max(int(time.time()), model.last_time + 1)
    repo.create_tag(tag, commit, message, tagger, when)
    info = TagInfo(tag, commit, when, tagger[0], tagger[1])
    parsed = parse_tag(info)
    assert parsed is not None
    model.events.append(parsed[1])
    return parsed[1]


def register(
    repo: Repo,
    name: str,
    commit: str,
    version: str | None = None,
    bump: str = "patch",
    message: str | None = None,
) -> Version:
    """Registers the commit as a new version (the latest one bumped, or v0.0.1)."""
    model = load(repo, name)
    existing = model.find(commit=commit)
    if existing is not None and existing.registered and existing.active:
        raise StateError(f"'{name}' already has version {existing.version} at commit {commit[:10]}")
    if version is not None:
        if not VERSION_RE.match(version):
            raise UsageError(f"version '{version}' is not valid: write v1.0.0")
        if model.find(version=version) is not None:
            raise StateError(f"version {version} of '{name}' is registered already")
    else:
        latest = model.latest()
        if latest is None:
            version = "v0.0.1"
        else:
            m = VERSION_RE.match(latest.version)
            assert m is not None
            major, minor, patch = int(m["major"]), int(m["minor"]), int(m["patch"])
            version = {
                "major": f"v{major + 1}.0.0",
                "minor": f"v{major}.{minor + 1}.0",
                "patch": f"v{major}.{minor}.{patch + 1}",
            }[bump]
            if model.find(version=version) is not None:
                raise StateError(
                    f"version {version} of '{name}' was registered before: give --version"
                )
    tag = f"{_tag_name(name)}@{version}"
    _write(repo, model, tag, commit, message or f"Registering artifact {name} version {version}")
    model = load(repo, name)
    found = model.find(version=version)
    assert found is not None
    return found


def deregister(repo: Repo, name: str, version: str) -> None:
    model = load(repo, name)
    found = model.find(version=version)
    if found is None or not found.registered:
        raise UsageError(f"'{name}' has no version {version}")
    if not found.active:
        raise StateError(f"version {version} of '{name}' was deregistered already")
    _write(
        repo,
        model,
        f"{_tag_name(name)}@{version}!",
        found.commit,
        f"Deregistering artifact {name} version {version}",
    )


def assign(repo: Repo, name: str, stage: str, version: Version, exclusive: bool = False) -> str:
    """Assigns the stage to the version (a new `name#stage#N` tag). `exclusive` first
    unassigns it from the version that holds it, as an MLflow alias moves."""
    check_stage(repo, stage)
    model = load(repo, name)
    holder = model.stages().get(stage)
    if holder is not None and holder.commit == version.commit:
        return ""
    if exclusive and holder is not None:
        _write(
            repo,
            model,
            f"{_tag_name(name)}#{stage}!#{model.max_counter + 1}",
            holder.commit,
            f"Unassigning stage '{stage}' to artifact '{name}' version '{holder.version}'",
        )
    tag = f"{_tag_name(name)}#{stage}#{model.max_counter + 1}"
    _write(
        repo,
        model,
        tag,
        version.commit,
        f"Assigning stage {stage} to artifact {name} version {version.version}",
    )
    return tag


def unassign(repo: Repo, name: str, stage: str, version: Version | None = None) -> str:
    model = load(repo, name)
    holder = version or model.stages().get(stage)
    if holder is None or stage not in holder.active_stages():
        raise UsageError(f"stage '{stage}' of '{name}' is not assigned")
    tag = f"{_tag_name(name)}#{stage}!#{model.max_counter + 1}"
    _write(
        repo,
        model,
        tag,
        holder.commit,
        f"Unassigning stage '{stage}' to artifact '{name}' version '{holder.version}'",
    )
    return tag


def deprecate(repo: Repo, name: str) -> str:
    model = load(repo, name)
    if not model.events:
        raise UsageError(f"no model named '{name}': see 'gitexp model list'")
    if model.deprecated:
        raise StateError(f"'{name}' was deprecated already")
    commit = model.events[-1].commit
    tag = f"{_tag_name(name)}@deprecated"
    _write(repo, model, tag, commit, f"Deprecating artifact '{name}'")
    return tag


# --- MLflow's view ------------------------------------------------------------------------------


def resolve(repo: Repo, name: str, ref: str) -> tuple[Model, Version]:
    """A version by MLflow's number ('3'), 'latest', a semver ('v0.0.3') or a stage/alias
    ('@champion' or a legacy stage name)."""
    if ref.startswith("@"):  # the fast path: only the stage's tags are read
        found = stage_version(repo, name, ref[1:])
        if found is not None:
            return Model(name), found
    model = load(repo, name)
    if not model.events:
        raise UsageError(f"no model named '{name}': see 'gitexp model list'")
    found: Version | None = None
    if ref.startswith("@"):
        found = stage_version(repo, name, ref[1:])
        if found is None:
            raise UsageError(f"model '{name}' has no alias or stage '{ref[1:]}'")
        return model, found
    if ref.isdigit():
        numbered = model.numbered()
        if not 1 <= int(ref) <= len(numbered):
            raise UsageError(f"model '{name}' has no version {ref} (it has {len(numbered)})")
        found = numbered[int(ref) - 1]
        if not found.active:
            raise UsageError(f"version {ref} of model '{name}' was deregistered")
    elif ref.lower() == "latest":
        found = model.latest()
    elif VERSION_RE.match(ref):
        found = model.find(version=ref)
    else:
        found = model.stages().get(ref) or model.stages().get(ref.lower())
    if found is None:
        raise UsageError(f"model '{name}' has no version or stage '{ref}'")
    return model, found


def _split_models_uri(uri: str) -> tuple[str, str]:
    body = uri[len("models:") :].lstrip("/")
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        return name, "@" + alias
    if "/" not in body:
        raise UsageError(
            f"invalid URI '{uri}': write models:/<name>/<version> or models:/<name>@<alias>"
        )
    name, ref = body.rsplit("/", 1)
    return name, ref


def locate_model(repo: Repo, uri: str) -> Any:
    """Where the model a `models:/` URI names is: the version's commit and the model's path
    in it (the run's logged model; or GTO's artifacts.yaml annotation for a plain commit)."""
    from gitexp.tracking.artifacts import RunArtifact, record_at, repo_path

    name, ref = _split_models_uri(uri)
    _, version = resolve(repo, name, ref)
    record = record_at(repo, version.commit)
    path = _model_path(repo, name, version, record)
    return RunArtifact(
        run_of(repo, version.commit) or version.commit,
        version.commit,
        record,
        repo_path(record, path) if record else path,
    )


def _model_path(repo: Repo, name: str, version: Version, record: dict[str, Any]) -> str:
    for event in version.registrations:
        message = _tag_message(repo, event.tag)
        for line in message.splitlines():
            if line.startswith("Model-Path: "):
                return line[len("Model-Path: ") :].strip()
    models = record.get("models") if isinstance(record.get("models"), dict) else {}
    named = [
        p
        for p, m in models.items()
        if isinstance(m, dict) and m.get("registered_model_name") == name
    ]
    if len(named) == 1:
        return named[0]
    if len(models) == 1:
        return next(iter(models))
    if models:
        raise UsageError(
            f"the run of {name} {version.version} has several models "
            f"({', '.join(models)}): load it with runs:/<run>/<path>"
        )
    annotated = _annotation_path(repo, version.commit, name)
    if annotated:
        return annotated
    raise UsageError(
        f"{name} {version.version} is at commit {version.commit[:10]}, which has no "
        "logged model and no artifacts.yaml entry for it"
    )


def _tag_message(repo: Repo, tag: str) -> str:
    with repo.batch_reader() as reader:
        oid = repo.text(["rev-parse", "--verify", "--end-of-options", f"refs/tags/{tag}"])
        proc = repo.git(["cat-file", "tag", oid])
    del reader
    return proc.stdout.decode("utf-8", "replace").split("\n\n", 1)[-1]


def _annotation_path(repo: Repo, commit: str, name: str) -> str | None:
    """GTO's artifacts.yaml at the commit: `name: {path: ..., type: model}`."""
    from gitexp.core import yamlio

    with repo.batch_reader() as reader:
        data = reader.read(f"{commit}:artifacts.yaml")
    if data is None:
        return None
    doc = yamlio.load(data, "artifacts.yaml")
    entry = doc.get(name) if isinstance(doc, dict) else None
    return str(entry["path"]) if isinstance(entry, dict) and entry.get("path") else None


def run_of(repo: Repo, commit: str) -> str | None:
    from gitexp.core.names import RUNS_PREFIX

    for ref, oid in repo.list_refs(RUNS_PREFIX):
        if oid == commit:
            return ref[len(RUNS_PREFIX) :]
    return None


def version_entity(
    repo: Repo, model: Model, version: Version, runs: dict[str, str]
) -> ModelVersion:
    number = model.number_of(version)
    stages = model.stages()
    aliases = sorted(s for s, v in stages.items() if v.commit == version.commit)
    run_id = runs.get(version.commit)
    source = version.commit
    if run_id:
        from gitexp.tracking.artifacts import record_at

        try:
            path = _model_path(repo, model.name, version, record_at(repo, version.commit))
            source = f"runs:/{run_id}/{path}"
        except UsageError:
            source = f"runs:/{run_id}"
    first = min((e.time for e in version.registrations), default=version.created)
    last = max((e.time for e in model.events if e.commit == version.commit), default=first)
    event = version.registrations[0] if version.registrations else None
    return ModelVersion(
        name=model.name,
        version=str(number) if number else version.version,
        semver=version.version,
        creation_timestamp=first * 1000,
        last_updated_timestamp=last * 1000,
        source=source,
        run_id=run_id,
        commit=version.commit,
        aliases=aliases,
        user_id=event.tagger if event else "",
        status="READY" if version.active else "DELETED",
    )


def model_entity(repo: Repo, model: Model) -> RegisteredModel:
    runs = _runs_by_commit(repo)
    latest = model.latest()
    first = min((e.time for e in model.events), default=0)
    return RegisteredModel(
        name=model.name,
        creation_timestamp=first * 1000,
        last_updated_timestamp=model.last_time * 1000,
        latest_versions=[version_entity(repo, model, latest, runs)] if latest else [],
        aliases={s: str(model.number_of(v) or v.version) for s, v in model.stages().items()},
        deprecated=model.deprecated,
    )


def _runs_by_commit(repo: Repo) -> dict[str, str]:
    from gitexp.core.names import RUNS_PREFIX

    return {oid: ref[len(RUNS_PREFIX) :] for ref, oid in repo.list_refs(RUNS_PREFIX)}


def commit_of_uri(repo: Repo, uri: str) -> tuple[str, str | None]:
    """The commit a model source names (runs:/<run>/<path>, a run name or a git revision),
    and the model's path in the run when the URI gives one."""
    from gitexp.store.snapshot import resolve_target
    from gitexp.tracking.artifacts import split_runs_uri

    path = None
    spec = uri
    if uri.startswith("runs:"):
        spec, path = split_runs_uri(repo, uri)
    target = resolve_target(repo, spec)
    assert target.rev is not None
    return target.rev, path or None


def register_model(
    model_uri: str,
    name: str,
    await_registration_for: int = 0,
    *,
    tags: dict[str, Any] | None = None,
) -> ModelVersion:
    """MLflow's `register_model`: a new version of `name` at the run's commit (the tag
    `name@vX.Y.Z`). A commit that already has a version returns that version."""
    from gitexp.tracking import context
    from gitexp.tracking.artifacts import record_at

    del await_registration_for, tags
    repo = Repo.discover(context.tracking_path())
    check_name(name)
    commit, path = commit_of_uri(repo, model_uri)
    model = load(repo, name)
    existing = model.find(commit=commit)
    if existing is None or not (existing.registered and existing.active):
        message = None
        record = record_at(repo, commit)
        models = record.get("models") if isinstance(record.get("models"), dict) else {}
        if path and models and path not in models:
            raise UsageError(
                f"run '{model_uri}' has no logged model at '{path}' "
                f"(it has {', '.join(models) or 'none'})"
            )
        if path and len(models) > 1:  # which of the run's models: said in the tag message
            message = f"Registering artifact {name} version {{version}}\n\nModel-Path: {path}"
        latest = model.latest()
        version = None
        if message is not None:
            version = _next_version(latest)
            message = message.format(version=version)
        existing = register(repo, name, commit, version=version, message=message)
        model = load(repo, name)
    return version_entity(repo, model, existing, _runs_by_commit(repo))


def _next_version(latest: Version | None) -> str:
    if latest is None:
        return "v0.0.1"
    m = VERSION_RE.match(latest.version)
    assert m is not None
    return f"v{m['major']}.{m['minor']}.{int(m['patch']) + 1}"
