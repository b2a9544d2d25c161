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

Before signing, it also looks at the graded module's objects: one that is a
reference answer itself (or a subclass, or its code), however the file reached
it, fails the check; the parent's syntax check cannot see names built at run time.

Failure messages go down the same pipe unsigned: they are shown to the student
but never earn points. Each says what went wrong where the student can act on
it: an error raised in the handed-in file names its type, message and line
(`SyntaxError: unmatched ')'` at `ex06_loss.py:37`), a failed check its
assertion, expected against got. The limit, stated in the README: the key lives in this
process's memory, so hostile code in the same process could dig it out; graders
of untrusted code use `lab grade --sandbox` on a copy they can throw away.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.abc
import inspect
import json
import os
import re
import resource
import sys
import traceback
from pathlib import Path
from types import ModuleType

import pytest

from lab.course.grade_imports import is_solutions

KEY_FD, RECORD_FD, LIMITS, ANSWERS = "LAB_GRADE_KEY_FD", "LAB_GRADE_FD", "LAB_GRADE_LIMITS", "LAB_GRADE_ANSWERS"
PACKAGE = "exercises"  # handed-in files are graded as this package, whatever their folder is called
MESSAGE_CHARS = 300  # the one line a failure shows
DETAIL_CHARS = 800  # the lines `lab grade -v` adds; a record stays below PIPE_BUF, so each write is atomic
DETAIL_LINES = 12


def token(key: bytes, check: str) -> str:
    """The proof that `check` passed: only someone holding `key` can make it."""
    return hmac.new(key, f"{check}\0passed".encode(), hashlib.sha256).hexdigest()


def printable(text: str, limit: int, keep_lines: bool = False) -> str:
    """`text` safe to print: no control characters (newlines kept only if asked), at most `limit` characters."""
    return "".join(c if c.isprintable() or (keep_lines and c == "\n") else " " for c in text[:limit])


class _NoSolutions(importlib.abc.MetaPathFinder):
    """Make `import solutions...` fail inside the grading process, however it is spelled."""

    def find_spec(self, fullname, path=None, target=None):
        if is_solutions(fullname):
            raise ImportError(f"grading does not allow importing '{fullname}': hand in your own code")


def _crash_lines(report: pytest.TestReport | pytest.CollectReport) -> list[str]:
    """pytest's own account of a failure: the exception line, then its assertion explanation."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        text = report.longrepr[2]
    else:
        text = str(report.longrepr)
    return [line.rstrip() for line in text.strip().splitlines() if line.strip()] or [""]


def _in_hand_in(filename: str | None, package: Path) -> str | None:
    """`ex06_loss.py` for a file of the handed-in package, None for any other file."""
    if not filename:
        return None
    path = Path(filename).resolve()
    return str(path.relative_to(package)) if path.is_relative_to(package) else None


def explain(error: BaseException, report: pytest.TestReport, package: Path) -> tuple[str, str, str]:
    """(message, where, detail) for a failed check: where is `file.py:line` in the hand-in, or ""."""
    if isinstance(error, SyntaxError) and (file := _in_hand_in(error.filename, package)):
        code = (error.text or "").strip()
        return f"{type(error).__name__}: {error.msg}", f"{file}:{error.lineno}", code
    frames = [
        (file, frame.lineno, frame.line)
        for frame in traceback.extract_tb(error.__traceback__)
        if (file := _in_hand_in(frame.filename, package))
    ]
    lines = _crash_lines(report)
    if not frames:  # raised by the check itself: its assertion message says what was expected and what came
        first = lines[0].removeprefix("AssertionError: ") if isinstance(error, AssertionError) else lines[0]
        return first, "", "\n".join(lines[1:])
    file, line, code = frames[-1]  # the deepest line of the hand-in: where the student looks first
    if isinstance(error, pytest.fail.Exception):  # pytest-timeout stopped it here
        text = lines[0].removeprefix("Failed: ")
        if seconds := re.search(r"Timeout \(>([\d.]+)s\)", text):
            text = f"Timeout: no result after {float(seconds[1]):g} s (an endless loop, or far too slow)"
    else:
        text = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    return text, f"{file}:{line}", "\n".join([code or "", *lines[1:]]).strip()


def _answers(names: list[str]) -> dict[str, object]:
    """The reference answers as objects (`plugins.dcgan.DCGANGenerator` -> the class), imported from the lab."""
    found = {}
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue  # not an object of the lab (e.g. a submodule name): the syntax check covers it
    return found


def _same(value: object, answer: object) -> bool:
    """`value` is `answer`, a subclass of it, or a function running its code."""
    try:
        if value is answer:
            return True
        if inspect.isclass(value) and inspect.isclass(answer):
            return issubclass(value, answer)
        code = getattr(inspect.unwrap(getattr(value, "func", value)), "__code__", None)
        return code is not None and code is getattr(answer, "__code__", None)
    except Exception:  # an object whose attributes misbehave is not the lab's answer
        return False


def borrowed_object(module: ModuleType, answers: dict[str, object]) -> str | None:
    """The first object of `module` (or method of its classes) that is a reference answer: `name is answer`."""
    if not answers:
        return None
    targets = list(answers.items())
    targets += [  # the answer classes' own methods, so `forward = DCGANGenerator.forward` is seen too
        (f"{name}.{attr}", member)
        for name, answer in answers.items()
        if inspect.isclass(answer)
        for attr, member in vars(answer).items()
        if inspect.isfunction(member)
    ]
    for own, value in vars(module).items():
        members = [(own, value)]
        if inspect.isclass(value) and value.__module__ == module.__name__:
            members += [(f"{own}.{a}", m) for a, m in vars(value).items() if inspect.isfunction(m)]
        for name, member in members:
            for answer_name, answer in targets:
                if not inspect.ismodule(member) and _same(member, answer):
                    return f"`{name}` is the lab's `{answer_name}`, a reference answer: grading needs your own code"
    return None


class Harness:
    """Signs passed checks and reports the others; one per grading child."""

    def __init__(self, key: bytes, record_fd: int, answers: list[str]):
        self._key, self._fd = key, record_fd
        self._answer_names, self._answers = answers, None
        self._package = (Path.cwd() / PACKAGE).resolve()
        self._collected: dict[str, tuple] = {}  # nodeid -> (item, function, code) as collected

    def _write(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write({"error": printable(f"{report.nodeid}: {_crash_lines(report)[0]}", MESSAGE_CHARS)})

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Remember each check's function as collected, before any student code has run."""
        for item in items:
            function = getattr(item, "obj", None)
            self._collected[item.nodeid] = (item, function, getattr(function, "__code__", None))
            self._write({"collected": item.nodeid})

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._write({"started": item.nodeid})  # so `lab grade` can say which check is running

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool:
        """Call the check as collected; sign it only if it returns (an exception propagates to pytest)."""
        item, function, code = self._collected[pyfuncitem.nodeid]
        if pyfuncitem is not item or function.__code__ is not code:
            raise RuntimeError("the check was replaced while it ran")
        function(**{name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames})
        graded = pyfuncitem.funcargs.get("ex")
        if isinstance(graded, ModuleType):
            if self._answers is None:
                self._answers = _answers(self._answer_names)
            if why := borrowed_object(graded, self._answers):
                raise ImportError(why)
        self._write({"passed": item.nodeid, "token": token(self._key, item.nodeid)})
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = (yield).get_result()
        if not (report.failed or report.skipped):
            return
        if report.failed and call.excinfo is not None:
            message, where, detail = explain(call.excinfo.value, report, self._package)
        else:
            message, where, detail = ("skipped: " if report.skipped else "") + _crash_lines(report)[0], "", ""
        self._write(
            {
                "failed": item.nodeid,
                "message": printable(message, MESSAGE_CHARS),
                "where": printable(where, 200),
                "detail": printable("\n".join(detail.splitlines()[:DETAIL_LINES]), DETAIL_CHARS, keep_lines=True),
            }
        )


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
    answers = json.loads(os.environ.pop(ANSWERS, "[]"))
    _apply_limits(json.loads(os.environ.pop(LIMITS, "{}")))
    for name in [n for n in sys.modules if is_solutions(n)]:
        del sys.modules[name]
    sys.meta_path.insert(0, _NoSolutions())
    config.pluginmanager.register(Harness(key, record_fd, answers), "lab-grade-harness")
