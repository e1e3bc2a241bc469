"""The benchmark figures the docs quote are the ones `make bench` wrote, from the committed code: every key quoted
in docs/benchmarks.md is in its JSON with the value quoted, and every JSON says which code wrote it."""

import json
import re
from fnmatch import fnmatch

import pytest

from helpers import REPO

RESULTS = REPO / "bench" / "results"
DOC = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
# | `file.json` | `key` / `key` | what | **figure** | target |
ROW = re.compile(r"^\| `(\w+)\.json` \| (.*?) \| .*? \| (.*?) \| .*? \|$", re.M)
STEP_ROW = re.compile(r"^\| `(\w+)` \| ([\d.]+) \| ([\d.]+) \|$", re.M)  # the training-step table
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def figures(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def agrees(quoted: str, value: float) -> bool:
    """`quoted` is `value` rounded to the decimals it shows."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(quoted) - value) <= 0.5 * 10 ** -decimals + 1e-9


def test_every_json_comes_from_a_committed_benchmark_that_make_bench_runs():
    benches = re.search(r"^BENCHES := (.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    found = sorted(RESULTS.glob("*.json"))
    assert found
    for path in found:
        data = json.loads(path.read_text())
        assert path.stem in benches and (REPO / "bench" / f"{path.stem}.py").exists(), path.name
        assert data["command"] == f"make bench ({path.stem}.py)", path.name
        assert "+src." in data["code"] and "dirty" not in data["code"], (path.name, data["code"])  # committed code
        assert all(not isinstance(v, (dict, list)) for v in data.values()), path.name
        assert "rounds" in data and any("_spread" in k for k in data), path.name  # repeats, median, spread


def test_the_docs_quote_the_keys_and_values_of_the_jsons():
    rows = ROW.findall(DOC)
    assert {name for name, *_ in rows} >= {p.stem for p in RESULTS.glob("*.json")}  # each JSON is quoted
    for name, key_cell, figure in rows:
        keys = re.findall(r"`([^`]+)`", key_cell)
        assert keys, f"{name}.json row without keys: {key_cell}"
        data = figures(name)
        if data is None:  # a benchmark this machine cannot run (gpu) says so instead of a figure
            assert "not measured" in figure, (name, figure)
            continue
        for key in keys:
            assert any(fnmatch(k, key) for k in data), f"{name}.json has no key {key}"
        numbers = NUMBER.findall(" ".join(re.findall(r"\*\*(.*?)\*\*", figure)))
        plain = [k for k in keys if "*" not in k]
        if len(plain) == len(keys) == len(numbers):  # one quoted number per key, in order
            for key, quoted in zip(keys, numbers):
                assert agrees(quoted, data[key]), f"{name}.json {key} is {data[key]}, the docs say {quoted}"


def test_the_training_step_table_is_train_step_json():
    data = figures("train_step")
    rows = STEP_ROW.findall(DOC)
    assert len(rows) >= 5
    for family, demo, echonet in rows:
        for size, quoted in (("demo", demo), ("echonet", echonet)):
            assert agrees(quoted, data[f"{family}_{size}_clips_per_s"]), (family, size)


@pytest.mark.parametrize("quoted, value, ok", [("0.48", 0.482, True), ("0.48", 0.49, False), ("12", 12.4, True)])
def test_rounding_comparison(quoted, value, ok):
    assert agrees(quoted, value) == ok
