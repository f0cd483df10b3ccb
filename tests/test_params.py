"""Params files and `-S` overrides (rows P1 to P8)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest

import oracle
from conftest import PARAMS, run_file, show_json
from gitexp.core.params import apply_overrides, load_params, parse_override
from gitexp.errors import UsageError

TRAIN = ["--", sys.executable, "train.py"]


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"train:\n\tlr: 1\n", "params.yaml:2:1"),
        (b"train: [1, 2\n", "params.yaml:2:1"),
        (b"a: 1\n\xff\xfe\n", "params.yaml:2:1: not valid UTF-8"),
        (b"a: \x00\x01\x02", "params.yaml"),
        (b"", "params.yaml:1:1: params must be a mapping"),
    ],
)
def test_P1_malformed_yaml_names_file_and_line(repo: Path, gitexp, content, where) -> None:
    (repo / "params.yaml").write_bytes(content)
    before = oracle.take(repo)
    proc = gitexp("run", "-S", "+x=1", *TRAIN)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"gitexp: error: {where}")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (repo / "started").exists()  # the command did not run
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_P2_unsafe_tags_are_refused(repo: Path, gitexp) -> None:
    (repo / "params.yaml").write_text("x: !!python/object/apply:os.system ['touch pwned']\n")
    proc = gitexp("run", "-S", "+y=1", "--", "true")
    assert proc.returncode == 2
    assert "params.yaml:1:4" in proc.stderr
    assert not (repo / "pwned").exists()


def test_P3_alias_bomb_is_bounded() -> None:
    """Mapping aliases expand when flattened: 10 levels of 10 references is 10^10 keys."""
    lines = ["l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for i in range(1, 10):
        refs = ", ".join(f"k{j}: *l{i - 1}" for j in range(10))
        lines.append(f"l{i}: &l{i} {{{refs}}}")
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"params.yaml: aliases expand its 131 values to more"):
        load_params(("\n".join(lines) + "\n").encode(), "params.yaml")
    assert time.monotonic() - started < 2


def test_P4_yaml_12_types() -> None:
    text = b"lr: 1e-3\ncountry: NO\nflag: on\nt: 1:20\nmode: 0777\nd: 2024-01-01\nok: true\n"
    assert load_params(text, "p.yaml") == {
        "lr": 0.001, "country": "NO", "flag": "on", "t": "1:20", "mode": 777,
        "d": "2024-01-01", "ok": True,
    }  # fmt: skip


def test_P4_override_1e_3_is_a_float(repo: Path, gitexp) -> None:
    assert gitexp("run", "-n", "p4", "-S", "train.lr=1e-3", *TRAIN).returncode == 0
    assert show_json(gitexp, "p4")[0]["params"]["params.yaml"]["train.lr"] == 0.001
    # written so that PyYAML (YAML 1.1) reads a float too
    assert "lr: 0.001   # learning rate" in run_file(repo, "p4", "params.yaml")


def test_P5_duplicate_keys_name_both_lines(repo: Path, gitexp) -> None:
    (repo / "params.yaml").write_text("train:\n  lr: 1\n  lr: 2\n")
    proc = gitexp("run", "-S", "train.lr=3", "--", "true")
    assert proc.returncode == 2
    assert "params.yaml:3:3: duplicate key 'lr' (first at line 2)" in proc.stderr


def test_P6_top_level_must_be_a_mapping() -> None:
    with pytest.raises(UsageError, match="params must be a mapping"):
        load_params(b"- 1\n- 2\n", "params.yaml")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train.nope=1", "key 'train.nope' does not exist in params.yaml; to add it, write -S "
                         "+train.nope=1"),
        ("seed.x=1", "'seed' is a value, not a mapping"),
        ("noequals", "write KEY=VALUE"),
        ("other.yaml:a=1", "params file other.yaml does not exist"),
        ("../x.yaml:a=1", "is not a params file in the repo"),
    ],
)  # fmt: skip
def test_P7_bad_override_changes_nothing(repo: Path, gitexp, spec: str, message: str) -> None:
    before = oracle.take(repo)
    proc = gitexp("run", "-S", spec, *TRAIN)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (repo / "started").exists()
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_P8_override_keeps_comments_order_and_quoting() -> None:
    src = b'# top\ntrain:\n  lr: 0.01   # rate\n  sha: "695e0514"\nlayers:\n  - 64\n  - 32\n'
    out = apply_overrides(
        src,
        "params.yaml",
        [parse_override(s) for s in ["train.lr=0.1", "layers=[128,64]", "+train.momentum=0.9"]],
    ).decode()
    assert out == (
        '# top\ntrain:\n  lr: 0.1   # rate\n  sha: "695e0514"\n  momentum: 0.9\n'
        "layers:\n  [128, 64]\n"
    )
    assert load_params(out.encode(), "params.yaml")["train.sha"] == "695e0514"


def test_overrides_of_lists_new_keys_and_other_files(repo: Path, gitexp) -> None:
    (repo / "model.json").write_text('{"layers": [1]}\n')
    args = ["-S", "+model.layers=[64,32]", "-S", "+opt.kind=adam",
            "-S", "model.json:layers=[2, 3]", "-S", "seed=.nan"]  # fmt: skip
    proc = gitexp("run", "-n", "many", *args, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    got = show_json(gitexp, "many")[0]["params"]
    assert got["params.yaml"]["model.layers"] == [64, 32]
    assert got["params.yaml"]["opt.kind"] == "adam"
    assert got["params.yaml"]["seed"] == "NaN"
    assert got["model.json"] == {"layers": [2, 3]}
    assert (repo / "params.yaml").read_text() == PARAMS
    assert (repo / "model.json").read_text() == '{"layers": [1]}\n'


def test_P9_command_rewriting_params_keeps_its_version_in_the_run(repo: Path, gitexp) -> None:
    append = "open('params.yaml', 'a').write('extra: 1\\n')"
    proc = gitexp("run", "-n", "p9", "-S", "seed=4", "--", sys.executable, "-c", append)
    assert proc.returncode == 0
    assert "the command changed params.yaml" in proc.stderr
    assert "extra: 1" in run_file(repo, "p9", "params.yaml")
    assert (repo / "params.yaml").read_text() == PARAMS


def test_nan_override_is_stored() -> None:
    out = apply_overrides(b"x: 1\n", "p.yaml", [parse_override("x=.nan")])
    assert math.isnan(load_params(out, "p.yaml")["x"])
