"""The trusted half of `lab grade`: a pytest plugin loaded (`-p lab.course.grade_child`) into each grading child.

The parent (`lab.course.grade`) starts one pytest child per exercise and decides every
verdict itself. This plugin runs in the child before any student module is
imported (student code is imported by the `ex` fixture, at the first check's
setup), and it:

- reads a random key from a pipe the parent wrote and closed (never from the
  environment or the command line, which the student's code could read later),
  then closes that pipe;
- applies the sandbox's resource limits, when the parent asks for them;
- blocks `import solutions` (and `solutions.*`) for the rest of the process;
- runs each check function itself, through the function object it saw at
  collection, and only when that function returns normally writes
  HMAC(key, check id) on the parent's record pipe. pytest's report objects,
  hooks and exit code, which student code can patch, decide nothing.

Failure messages go down the same pipe unsigned: they are shown to the student
but never earn points. The limit, stated in the README: the key lives in this
process's memory, so hostile code in the same process could dig it out; graders
of untrusted code use `lab grade --sandbox` on a copy they can throw away.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.abc
import json
import os
import resource
import sys

import pytest

KEY_FD, RECORD_FD, LIMITS = "LAB_GRADE_KEY_FD", "LAB_GRADE_FD", "LAB_GRADE_LIMITS"
MESSAGE_CHARS = 300  # records stay far below PIPE_BUF, so each write is atomic


def token(key: bytes, check: str) -> str:
    """The proof that `check` passed: only someone holding `key` can make it."""
    return hmac.new(key, f"{check}\0passed".encode(), hashlib.sha256).hexdigest()


def is_solutions(name: str) -> bool:
    return name == "solutions" or name.startswith("solutions.")


class _NoSolutions(importlib.abc.MetaPathFinder):
    """Make `import solutions...` fail inside the grading process, however it is spelled."""

    def find_spec(self, fullname, path=None, target=None):
        if is_solutions(fullname):
            raise ImportError(f"grading does not allow importing '{fullname}': hand in your own code")


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        text = report.longrepr[2]
    else:
        text = str(report.longrepr)
    return (text.strip().splitlines() or [""])[0][:MESSAGE_CHARS]


class Harness:
    """Signs passed checks and reports the others; one per grading child."""

    def __init__(self, key: bytes, record_fd: int):
        self._key, self._fd = key, record_fd
        self._collected: dict[str, tuple] = {}  # nodeid -> (item, function, code) as collected

    def _write(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode())

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write({"error": f"{report.nodeid}: {_first_line(report)}"})

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Remember each check's function as collected, before any student code has run."""
        for item in items:
            function = getattr(item, "obj", None)
            self._collected[item.nodeid] = (item, function, getattr(function, "__code__", None))
            self._write({"collected": item.nodeid})

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool:
        """Call the check as collected; sign it only if it returns (an exception propagates to pytest)."""
        item, function, code = self._collected[pyfuncitem.nodeid]
        if pyfuncitem is not item or function.__code__ is not code:
            raise RuntimeError("the check was replaced while it ran")
        function(**{name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames})
        self._write({"passed": item.nodeid, "token": token(self._key, item.nodeid)})
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed or report.skipped:
            prefix = "skipped: " if report.skipped else ""
            self._write({"failed": report.nodeid, "message": prefix + _first_line(report)})


def _read_key(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:  # the parent wrote the key and closed its end: read to EOF, close ours
        return pipe.read()


def _apply_limits(limits: dict[str, int]) -> None:
    """Soft and hard limits alike, so the graded code cannot raise them again."""
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def pytest_configure(config: pytest.Config) -> None:
    if KEY_FD not in os.environ or RECORD_FD not in os.environ:
        raise pytest.UsageError("lab.course.grade_child is started by `lab grade`, not by hand")
    key = _read_key(int(os.environ.pop(KEY_FD)))
    record_fd = int(os.environ.pop(RECORD_FD))
    _apply_limits(json.loads(os.environ.pop(LIMITS, "{}")))
    for name in [n for n in sys.modules if is_solutions(n)]:
        del sys.modules[name]
    sys.meta_path.insert(0, _NoSolutions())
    config.pluginmanager.register(Harness(key, record_fd), "lab-grade-harness")
