"""The pure core in-process, in milliseconds: numbers and sorting, rendering, secrets, the
record schema, YAML/JSON limits, configuration and the filter language's edges."""

from __future__ import annotations

import json
import math
import re

import pytest

from gitexp.core import yamlio
from gitexp.core.compare import Entry, KeyIndex, columns_of, diff_sections, select
from gitexp.core.config import parse_config, parse_size
from gitexp.core.metrics import (
    delta,
    is_number,
    load_metrics,
    ordered,
    parse_number,
    relative,
    sort_key,
)
from gitexp.core.params import flatten, load_params
from gitexp.core.query import evaluate, keys_of, parse_filter
from gitexp.core.render import escape_markdown, format_value, json_safe, render_rows, to_json
from gitexp.core.secrets import masked, redact, secret_param, secret_values
from gitexp.errors import UsageError
from gitexp.store.schema import load_record, problem

# --- metrics: numbers, deltas, sorting ---------------------------------------------------------


def test_numbers_and_deltas() -> None:
    assert is_number(1) and is_number(1.5) and not is_number(True) and not is_number("1")
    assert parse_number("3") == 3 and isinstance(parse_number("3"), int)
    assert parse_number("3.5") == 3.5 and parse_number("nan") != parse_number("nan")
    assert parse_number("high") == "high" and parse_number(None) is None
    assert delta(0.966667, 0.982222) == 0.015555  # binary noise rounded away
    assert delta(1, 3) == 2 and delta(3, 1) == -2
    assert delta(1, "x") is None and delta(None, 1) is None and delta(True, 2) is None
    assert delta(float("inf"), float("inf")) is None  # nan is no delta
    assert delta(10**400, 1.0) is None  # overflow is no delta
    assert relative(2, 3) == 0.5 and relative(-2, -3) == -0.5
    assert relative(0, 1) is None and relative(float("inf"), 1) is None


def test_sort_key_puts_nan_and_missing_last_both_ways() -> None:
    values = [3, None, float("nan"), 1, "b", 2, "a"]
    up = sorted(values, key=sort_key)
    down = sorted(values, key=lambda v: sort_key(v, descending=True))
    assert up[:3] == [1, 2, 3] and up[3:5] == ["a", "b"]
    assert down[:3] == [3, 2, 1]
    assert {repr(v) for v in up[5:]} == {"None", "nan"} == {repr(v) for v in down[5:]}


def test_metrics_files_csv_tsv_json_and_errors() -> None:
    assert load_metrics(b"step,acc\n0,0.5\n1,0.75\n", "m.csv") == {"step": 1, "acc": 0.75}
    assert load_metrics(b"step\tloss\n0\tnan\n", "m.tsv")["step"] == 0
    assert load_metrics(b"", "m.csv") == {} and load_metrics(b"null", "m.json") == {}
    assert load_metrics(b'{"a": {"b": 1}}', "m.json") == {"a.b": 1}
    with pytest.raises(UsageError, match="metrics must be a mapping"):
        load_metrics(b"[1, 2]", "m.json")
    with pytest.raises(UsageError, match="m.json: duplicate key 'a'"):
        load_metrics(b'{"a": 1, "a": 2}', "m.json")
    assert load_metrics(b"step,acc\n0,0.5\n", "eval.v2.csv") == {"step": 0, "acc": 0.5}
    assert load_metrics(b"acc: 0.5\n", "scores.final.yaml") == {"acc": 0.5}


def test_yaml_merge_keys_and_duplicates_after_them() -> None:
    base = "a: &a {x: 1}\n"
    assert yamlio.load(base + "b: {<<: *a, y: 2}\n", "p.yaml")["b"] == {"x": 1, "y": 2}
    with pytest.raises(UsageError, match="duplicate key 'y'"):
        yamlio.load(base + "b: {<<: *a, y: 2, y: 3}\n", "p.yaml")


def test_ordered_numbers_then_text_then_missing_both_ways() -> None:
    nan = math.nan
    items = [3, "2026-01-02", None, 1, "2026-01-01", nan, 2]
    assert ordered(items, lambda v: v) == [1, 2, 3, "2026-01-01", "2026-01-02", None, nan]
    assert ordered(items, lambda v: v, descending=True) == [
        3, 2, 1, "2026-01-02", "2026-01-01", None, nan
    ]  # fmt: skip
    assert ordered(["b", "a"], lambda v: v) == ["a", "b"]  # ascending unless asked


# --- params -----------------------------------------------------------------------------------


def test_flatten_keeps_order_lists_and_empty_mappings() -> None:
    doc = {"b": {"y": 1, "x": [1, 2]}, "a": {}, "c": {"d": {"e": None}}}
    assert list(flatten(doc).items()) == [("b.y", 1), ("b.x", [1, 2]), ("a", {}), ("c.d.e", None)]
    with pytest.raises(UsageError, match="more than 100000 keys"):
        flatten({f"k{i}": i for i in range(100_001)}, "big.yaml")


def test_toml_and_json_params() -> None:
    assert load_params(b"[train]\nlr = 0.1\n", "p.toml") == {"train.lr": 0.1}
    assert load_params(b'{"train": {"lr": 0.1}}', "p.json") == {"train.lr": 0.1}
    with pytest.raises(UsageError, match=r"p.json:1:\d+: "):
        load_params(b'{"train": ', "p.json")


# --- YAML and JSON limits (rows S3, S4) --------------------------------------------------------


def test_yaml_limits_are_exact() -> None:
    ok = "a: " + "[" * 98 + "1" + "]" * 98  # mapping, 98 lists, a scalar: 100 levels
    assert yamlio.load(ok, "ok.yaml")["a"] is not None
    with pytest.raises(UsageError, match="deep.yaml: nested more than 100 levels deep"):
        yamlio.load("a: " + "[" * 99 + "1" + "]" * 99, "deep.yaml")
    shared = "a: &a [1, 2, 3]\n" + "".join(f"b{i}: *a\n" for i in range(50))
    assert len(yamlio.load(shared, "ok.yaml")) == 51  # plain reuse of an anchor is fine
    with pytest.raises(UsageError, match="refers to a value that contains it"):
        yamlio.load("a: &a {b: *a}", "loop.yaml")
    with pytest.raises(UsageError, match="too large to read"):
        yamlio.load(b"a: 1\n" + b"#" * (yamlio.MAX_YAML_BYTES + 1), "big.yaml")


def test_json_limits_and_depth_check() -> None:
    nested = yamlio.load_json("[" * 100 + "]" * 100, "ok.json")
    for _ in range(99):
        nested = nested[0]
    assert nested == []
    with pytest.raises(UsageError, match="ok.json: nested more than 100 levels deep"):
        yamlio.load_json("[" * 101 + "]" * 101, "ok.json")
    yamlio.check_depth({"a": [[1]]}, "x")
    with pytest.raises(UsageError, match="x: nested more than 100"):
        yamlio.check_depth(json.loads("[" * 101 + "]" * 101), "x")
    with pytest.raises(UsageError, match=r"bad.json:1:2: "):
        yamlio.load_json("{x", "bad.json")


def test_yaml_12_scalars_and_strictness() -> None:
    doc = yamlio.load("a: 0o17\nb: 0x1f\nc: .inf\nd: -.inf\ne: .nan\nf: ~\ng: TRUE\n", "t")
    assert doc["a"] == 15 and doc["b"] == 31 and doc["c"] == math.inf and doc["d"] == -math.inf
    assert math.isnan(doc["e"]) and doc["f"] is None and doc["g"] is True
    assert yamlio.dump_inline(float("nan")) == ".nan" and yamlio.dump_inline(-math.inf) == "-.inf"
    assert yamlio.dump_inline([1, "a"]) == "[1, a]" and yamlio.dump_inline("x") == "x"
    with pytest.raises(UsageError, match=r"t:2:1: duplicate key 'a' \(first at line 1\)"):
        yamlio.load("a: 1\na: 2\n", "t")
    with pytest.raises(UsageError, match=r"^t:1:2: not valid UTF-8 text$"):
        yamlio.load(b"a\xff", "t")


# --- rendering --------------------------------------------------------------------------------


def test_format_value_and_json_safety() -> None:
    assert format_value(None) == "-" and format_value(True) == "true"
    assert format_value(0.1234567) == "0.123457" and format_value(0.1234567, 3) == "0.123"
    assert format_value(float("nan")) == "nan" and format_value(-math.inf) == "-inf"
    assert format_value([1, float("inf")]) == '[1, "Infinity"]' and format_value(7) == "7"
    assert json_safe({"a": [float("nan"), -math.inf], 1: 2}) == {"a": ["NaN", "-Infinity"], "1": 2}
    assert json.loads(to_json({"x": math.inf})) == {"x": "Infinity"}


def test_markdown_cells_cannot_break_out() -> None:
    cell = escape_markdown("a|b\nc <img src=x> @octocat & \\")
    assert cell == "a\\|b c &lt;img src=x&gt; @\u200boctocat &amp; \\\\"
    table = render_rows(["k", "v"], [["a|b", 1.5], ["c", None]], "md")
    cells = [re.split(r"(?<!\\)\|", line.strip()) for line in table.splitlines()]
    assert [len(row) for row in cells] == [4, 4, 4, 4]  # two cells between three pipes


def test_csv_and_json_rows() -> None:
    rows = [["x", 0.1, None, True, [1, 2], float("nan")]]
    csv_text = render_rows(["a", "b", "c", "d", "e", "f"], rows, "csv")
    assert csv_text.splitlines()[1] == 'x,0.1,,true,"[1, 2]",nan'
    data = json.loads(render_rows(["a", "b"], [["x", math.inf]], "json"))
    assert data == [{"a": "x", "b": "Infinity"}]
    assert render_rows(["a"], [], "json", json_data={"k": 1}) == '{\n  "k": 1\n}'


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"),
    [("api_key", True), ("train.hf_token", True), ("client_secret", True), ("password", True),
     ("aws_secret_access_key", True), ("max_tokens", False), ("tokenizer", False),
     ("keys", False), ("model.key_dim", False), ("auth", True)],
)  # fmt: skip
def test_secret_params(key: str, secret: bool) -> None:
    assert secret_param(key) is secret
    assert masked({key: 1}) == {key: "***" if secret else 1}


def test_secret_values_longest_first_and_short_ones_kept() -> None:
    env = {"GITHUB_TOKEN": "abcdef123", "MY_TOKEN_LONG": "abcdef123456", "PIN_KEY": "123",
           "HOME": "/root"}  # fmt: skip
    values = secret_values(env)
    assert values == [b"abcdef123456", b"abcdef123"]
    assert redact(b"x abcdef123456 y abcdef123 /root 123", values) == b"x *** y *** /root 123"


# --- the record schema (row S5) ---------------------------------------------------------------


GOOD = {"version": 1, "name": "r", "status": "success", "started": "2026-01-01T00:00:00+00:00",
        "command": ["python"], "params": {"p.yaml": {"a": 1}}, "tags": {"k": "v"},
        "duration": 1.5, "exit_code": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"started": 5}, "'started' is int, not a string"),
     ({"params": "x"}, "'params' is str, not an object"),
     ({"params": {"p.yaml": 1}}, "'params' must map each file to its values"),
     ({"tags": {"k": 1}}, "'tags' must map names to strings"),
     ({"command": ["a", 1]}, "'command' must be a list of strings"),
     ({"duration": True}, "'duration' is bool, not an integer or a number or null"),
     ({"exit_code": 1.5}, "'exit_code' is float, not an integer or null"),
     ({"status": None}, "'status' is NoneType, not a string")],
)  # fmt: skip
def test_schema_names_the_field(change: dict, reason: str) -> None:
    assert problem(GOOD) is None
    assert problem({**GOOD, **change}) == reason
    record, why = load_record(json.dumps({**GOOD, **change}).encode())
    assert record is None and why == f"its record is malformed: {reason}"


def test_schema_required_fields_and_shapes() -> None:
    assert problem([]) == "it is not a JSON object"
    assert problem({k: v for k, v in GOOD.items() if k != "status"}) == "'status' is missing"
    assert load_record(json.dumps({**GOOD, "future_field": {"x": 1}}).encode())[0] is not None
    assert load_record(b"{")[1].startswith("its record is not valid JSON")


# --- configuration ----------------------------------------------------------------------------


def test_config_defaults_sizes_and_dvc_yaml() -> None:
    empty = parse_config(None, None)
    assert empty.params_files == ("params.yaml", "dvclive/params.yaml")
    assert empty.max_file_bytes == 10_000_000
    assert parse_size("1.5 GB") == 1_500_000_000 and parse_size(42) == 42
    assert parse_size("10kb") == 10_000
    with pytest.raises(UsageError, match="max_file_size 'lots'"):
        parse_size("lots")
    dvc_yaml = b"""
params: [extra.yaml]
stages:
  train:
    params: [train.lr, {config/eval.yaml: [threshold]}]
    metrics: [eval/metrics.json, {scores.json: {cache: false}}]
"""
    config = parse_config(b"metrics: [m.json]\ndirection: {loss: min}\n", dvc_yaml)
    assert config.params_files[-2:] == ("extra.yaml", "config/eval.yaml")
    assert config.metrics_files == ("m.json", "eval/metrics.json", "scores.json")
    assert config.directions == {"loss": "min"}
    with pytest.raises(UsageError, match="'direction' maps metrics to min or max"):
        parse_config(b"direction: {loss: lowest}\n", None)
    with pytest.raises(UsageError, match="'params' must be a list of file paths"):
        parse_config(b"params: 3\n", None)


# --- compare and select -----------------------------------------------------------------------


def entries() -> list[Entry]:
    return [
        Entry("a", "1", None, "2026-01-02", "success", 1.0, params={"p.yaml": {"lr": 0.1}},
              metrics={"m.json": {"acc": 0.9}}, tags={"team": "x"}),
        Entry("b", "2", None, "2026-01-01", "failed", 2.0, params={"p.yaml": {"lr": 0.2}},
              metrics={"m.json": {"acc": 0.8}}),
        Entry("c", "3", None, "2026-01-03", "success", None, params={"p.yaml": {"lr": 0.3}}),
    ]  # fmt: skip


def test_select_sorts_filters_limits_and_tags() -> None:
    names = lambda chosen: [e.name for e in chosen]  # noqa: E731
    assert names(select(entries(), sort_by="acc")) == ["b", "a", "c"]
    assert names(select(entries(), sort_by="acc", descending=True)) == ["a", "b", "c"]
    assert names(select(entries(), filter_expr="tags.team == 'x'")) == ["a"]
    assert names(select(entries(), filter_expr="status != 'failed' and lr > 0.15")) == ["c"]
    assert names(select(entries(), sort_by="lr", limit=2)) == ["a", "b"]
    assert names(select(entries(), filter_expr="params.lr >= 0.2", sort_by="duration")) == [
        "b", "c"
    ]  # fmt: skip
    with pytest.raises(UsageError, match="unknown key 'nope': the keys are acc, lr$"):
        select(entries(), sort_by="nope")
    with pytest.raises(UsageError, match="unknown key 'accc': did you mean acc[?] the keys"):
        select(entries(), sort_by="accc")
    many = [Entry("m", "9", None, "2026-01-09", "success", 1.0,
                  params={"p.yaml": {f"k{i:02}": i for i in range(15)}})]  # fmt: skip
    with pytest.raises(UsageError, match="k11 and 3 more [(]see 'gitexp show'[)]$"):
        select(many, sort_by="zzz")


def test_columns_and_key_index() -> None:
    columns = columns_of(entries())
    assert [(c.kind, c.label) for c in columns] == [("params", "lr"), ("metrics", "acc")]
    # a key in two files is labelled with its file; a key in one file keeps its short name
    metrics = {"train.json": {"acc": 0.9, "loss": 1}, "eval.json": {"acc": 0.8}}
    two = [Entry("d", "4", None, "2026-01-04", "success", 1.0, metrics=metrics)]
    assert [c.label for c in columns_of(two)] == ["train.json:acc", "loss", "eval.json:acc"]
    index = KeyIndex(columns)
    assert index.lookup(entries()[0], "m.json:acc") == 0.9
    assert index.lookup(entries()[0], "metrics.acc") == 0.9 and index.resolve("name") == "name"


def test_diff_sections_order_and_flags() -> None:
    old = {"params": {"p.yaml": {"lr": 0.1, "gone": 1}}, "metrics": {"m.json": {"acc": 0.5}}}
    new = {"params": {"p.yaml": {"lr": 0.1, "new": 2}}, "metrics": {"m.json": {"acc": 0.5}}}
    changed = diff_sections(old, new)
    assert [(c.key, c.in_old, c.in_new) for c in changed] == [("gone", True, False),
                                                              ("new", False, True)]  # fmt: skip
    assert len(diff_sections(old, new, show_all=True)) == 4
    nan = {"metrics": {"m.json": {"x": float("nan")}}}
    assert diff_sections(nan, nan) == []  # an unchanged NaN is no change


def test_filter_keys_and_arithmetic_edges() -> None:
    tree = parse_filter("a + b * 2 > `weird key` and not c == 'x\\'y'")
    assert keys_of(tree) == {"a", "b", "weird key", "c"}
    values = {"a": 1, "b": 2, "weird key": 4.5, "c": "x'y"}
    assert not evaluate(tree, values.get)  # c == "x'y": `not` makes it false
    assert evaluate(parse_filter("a / 0 != 1"), values.get) is False  # nan never compares
    assert evaluate(parse_filter("1e-3 < a and .5 < a and 2E2 > a"), values.get)
    assert evaluate(parse_filter("a == true or null == a"), {"a": True}.get) is True
    nan = {"a": 1.0, "n": math.nan}.get
    assert not evaluate(parse_filter("a < n"), nan) and not evaluate(parse_filter("n < a"), nan)
    assert not evaluate(parse_filter("a != n"), nan)  # NaN matches nothing, != included
    for bad, message in (("acc > 1 )", "unexpected ')'"), ("acc >", "it ends too early")):
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_filter(bad)


# --- overrides: the text editor, table-driven ----------------------------------------------

from gitexp.core.params import apply_overrides, parse_override  # noqa: E402

EDITS = [
    # (file text, overrides, expected text)
    ("a: 1\n", ["a=2"], "a: 2\n"),
    ("a: 1  # keep\nb: 2\n", ["a=3"], "a: 3  # keep\nb: 2\n"),
    ("t:\n  lr: 0.1\n  ep: 3\n", ["t.ep=4"], "t:\n  lr: 0.1\n  ep: 4\n"),
    ("t:\n  lr: 0.1\n", ["+t.new=x"], "t:\n  lr: 0.1\n  new: x\n"),
    ("t:\n  lr: 0.1\n", ["+u.v.w=1"], "t:\n  lr: 0.1\nu:\n  v:\n    w: 1\n"),
    ("t: {lr: 0.1}\n", ["t.lr=0.2"], "t: {lr: 0.2}\n"),
    ("t: {lr: 0.1}\n", ["+t.b=2"], "t: {lr: 0.1, b: 2}\n"),
    ("t: {}\n", ["+t.b=2"], "t: {b: 2}\n"),
    ("", ["+a.b=1"], "a:\n  b: 1\n"),
    ("a:\n", ["a=5"], "a: 5\n"),
    ("m:\n- x\n- y\nz: 1\n", ["m=[q]"], "m: [q]\nz: 1\n"),
    ("m:\n  - x\nz: 1\n", ["m=[q]"], "m:\n  [q]\nz: 1\n"),
    ('s: "695e0514"\n', ["s='abc'"], "s: 'abc'\n"),
    ("lr: 0.1\n", ["lr=1e-3"], "lr: 0.001\n"),
    ("flag: true\n", ["flag=no"], "flag: 'no'\n"),
    ("n: 1\n", ["n=null"], "n: null\n"),
    ("a: 1\nb: 2\n", ["a=10", "b=20"], "a: 10\nb: 20\n"),
    ("t:\n  lr: 0.1\n", ["t={lr: 0.5, d: 2}"], "t:\n  {lr: 0.5, d: 2}\n"),
    ("t:\n  lr: 0.1\n", ["t={lr: 0.5, d: {e: 1}}"], "t:\n  {lr: 0.5, d: {e: 1}}\n"),
    ("t:\n  lr: 0.1\nu: 1\n", ["t={}"], "t:\n  {}\nu: 1\n"),
    ("a: 1\n", ["a=1.50"], "a: 1.50\n"),  # as typed: every YAML reader reads 1.5
    ("a: 1\n", ["a=.nan"], "a: .nan\n"),
]


@pytest.mark.parametrize(("text", "specs", "expected"), EDITS)
def test_override_edits_only_the_value(text: str, specs: list[str], expected: str) -> None:
    out = apply_overrides(text.encode(), "p.yaml", [parse_override(s, "p.yaml") for s in specs])
    assert out.decode() == expected


def test_json_overrides_and_targets() -> None:
    specs = [parse_override("a.b=2", "p.json"), parse_override("+a.c=[1]", "p.json")]
    out = apply_overrides(b'{"a": {"b": 1}}', "p.json", specs)
    assert out == b'{\n  "a": {\n    "b": 2,\n    "c": [\n      1\n    ]\n  }\n}\n'
    with pytest.raises(UsageError, match=re.escape(
        "key 'a.x' does not exist in p.json; to add it, write -S +a.x=3")):  # fmt: skip
        apply_overrides(b'{"a": {"b": 1}}', "p.json", [parse_override("a.x=3", "p.json")])
    for text, what in ((b"- 1\n", "not a list"), (b"", "not empty"), (b"5\n", "not a int")):
        with pytest.raises(UsageError, match=f"p.yaml:1:1: params must be .*, {what}$"):
            load_params(text, "p.yaml")
    assert parse_override("cfg/x.yaml:a.b=1").file == "cfg/x.yaml"
    assert parse_override("+cfg/x.yaml:a=1").add and parse_override("cfg/x.yaml:+a=1").add
    assert parse_override("a=").value == ""
    assert parse_override("a= [1, 2]").value == [1, 2]


@pytest.mark.parametrize(
    ("text", "spec", "message"),
    [
        ("a: 1\n", "b=1", "key 'b' does not exist in p.yaml; to add it, write -S +b=1"),
        ("a: 1\n", "a.b=1", "cannot set 'a.b' in p.yaml: 'a' is a value, not a mapping"),
        ("- 1\n", "+a=1", "p.yaml:1:1: params must be a mapping"),
        ('{"a": 1}', "a.b=1", "cannot set 'a.b' in p.json"),
    ],
)
def test_override_errors(text: str, spec: str, message: str) -> None:
    path = "p.json" if text.startswith("{") else "p.yaml"
    with pytest.raises(UsageError, match=re.escape(message)):
        apply_overrides(text.encode(), path, [parse_override(spec, path)])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("novalue", "write KEY=VALUE"),
        ("a..b=1", "the key is empty or has an empty part"),
        ("=1", "the key is empty"),
        ("/etc/p.yaml:a=1", "is not a params file in the repo"),
        ("-x.yaml:a=1", "is not a params file in the repo"),
        ("../p.yaml:a=1", "is not a params file in the repo"),
        (".GIT/config:a=1", "belongs to git, DVC or gitexp"),
        (".dvc/config:a=1", "belongs to git, DVC or gitexp"),
        ("p.toml:a=1", None),
    ],
)
def test_override_specs(spec: str, message: str | None) -> None:
    if message is None:
        with pytest.raises(UsageError, match="overriding TOML params is not supported"):
            apply_overrides(b"a = 1\n", "p.toml", [parse_override(spec)])
        return
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_override(spec)
