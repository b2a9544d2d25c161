"""`lab grade`: grade a folder of exercise files against the course checks, print a score table.

The graded code is not trusted, so this process decides every verdict and
never runs student code itself:

- It reads the checks (`tests/grading/`) once, verifies them against the fixed
  manifest (`lab/course/grade_manifest.py`: exercises, checks, points, file hashes),
  and scores against that manifest: a check without a verdict scores 0.
- It refuses files that import `solutions`, or the lab's own implementation of
  an exercise (the manifest's `ANSWERS`, read from their syntax tree); the child
  blocks `solutions` at run time as well.
- It runs one pytest child per exercise in a throw-away folder holding fresh
  copies of the checks and of the handed-in files, in a new process group that
  is killed as a whole when the child ends or runs past its time.
- Each child gets a fresh random key on a pipe. The harness (`lab.course.grade_child`)
  signs a check with it only when the check function returned normally, and
  sends the signature on another pipe; this process counts only signatures it
  can verify. A child that exits early, rewrites files or patches pytest just
  leaves checks unsigned.

One child per exercise (not per check) keeps a full grade at 30-55 s on two
busy cores (measured): each child pays a few seconds of imports, two run at a
time, and each uses one thread.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import hmac
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.course import grade_report, grade_sandbox
from lab.course.grade_child import KEY_FD, LIMITS, MESSAGE_CHARS, RECORD_FD, is_solutions, token
from lab.course.grade_manifest import ANSWERS, CHECKS, SHA256
from lab.course.grade_report import CheckResult, ExerciseScore
from lab.errors import LabError
from lab.files import atomic_write

ROOT = Path(__file__).resolve().parents[2]  # the checkout: lab/course/grade.py -> repository root
GRADING_DIR = ROOT / "tests" / "grading"
PACKAGE = "exercises"  # handed-in files are graded as this package, whatever their folder is called
STARTUP_S = 60  # a child's allowance for imports and collection, on top of `timeout` per check
WORKERS = 2  # children at a time: the lab's machine has 2 cores, and each child uses one thread
POLL_S = 0.2
MAX_RECORD_BYTES = 1 << 20  # what a child may send; more is a flood and is dropped
CHILD_ENV_DROPPED = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "LAB_GRADE_TARGET", KEY_FD, RECORD_FD, LIMITS)


@dataclass
class ChildRun:
    """What one grading child left: its records (untrusted bytes), how it ended, its console output."""

    records: bytes
    returncode: int | None
    stopped_after: float | None  # seconds, when it ran past its time and was killed
    output: str


def exercises(only: str = "") -> list[str]:
    """The manifest's exercises, or the one named by `only` (`ex04` or `ex04_generator`)."""
    names = sorted(CHECKS)
    if not only:
        return names
    chosen = [n for n in names if n == only or n.startswith(f"{only}_")]
    if not chosen:
        raise LabError(f"no exercise '{only}'; choose one of {', '.join(n.split('_')[0] for n in names)}")
    return chosen


def target_folder(target: str) -> Path:
    """`--target`: a folder as given, else one of the lab's own (`exercises`, `solutions`)."""
    for folder in (Path(target).expanduser(), ROOT / target):
        if folder.is_dir():
            return folder.resolve()
    raise LabError(f"--target {target}: no such folder")


def lab_answers() -> set[str]:
    """The lab's own implementations of the exercises (`plugins.dcgan.DCGANGenerator`, ...; `ANSWERS`).

    Importing one of these is handing in the answer just as surely as importing `solutions`."""
    return set(ANSWERS)


def _imported(node: ast.AST) -> list[str]:
    """The dotted names a syntax node imports or spells out (import strings and attribute chains included)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Constant) and isinstance(
        node.value, str
    ):  # import_module("solutions..."), "module:attr" specs
        return [node.value.strip().replace(":", ".")]
    if isinstance(node, ast.Attribute):
        return [ast.unparse(node)]
    return []


def borrowed_answer(folder: Path) -> tuple[Path, int, str] | None:
    """The first Python file in `folder` that imports `solutions` or one of the lab's own answers: file, line, name."""
    answers = lab_answers()
    for path in sorted(folder.rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue  # it cannot import anything; its checks fail with the syntax error
        for node in ast.walk(tree):
            for name in _imported(node):
                star = name.endswith(".*") and any(answer.startswith(name[:-1]) for answer in answers)
                if is_solutions(name) or name in answers or star:
                    return path, node.lineno, name
    return None


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every .py file under `folder` by relative path: copies are made from memory, not from a folder graded code could edit."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts
    }


def read_checks(names: list[str]) -> dict[str, bytes | None]:
    """The conftest and each exercise's check file, verified against the manifest; None for a missing check file."""
    checks: dict[str, bytes | None] = {}
    for file in ["conftest.py", *(f"test_{name}.py" for name in names)]:
        path = GRADING_DIR / file
        if not path.is_file():
            if file == "conftest.py":
                raise LabError(
                    f"{path} is missing; `lab grade` runs from a source checkout (restore it: git checkout tests/grading)"
                )
            checks[file] = None
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != SHA256[file]:
            raise LabError(
                f"{path} differs from lab/course/grade_manifest.py: restore it (git checkout tests/grading) or update the manifest"
            )
        checks[file] = data
    return checks


def _write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _read_records(proc: subprocess.Popen, fd: int, deadline: float) -> tuple[bytes, bool]:
    """Read the record pipe until the child exits (or every writer closed it); True if time ran out first."""
    data = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            exited = proc.poll() is not None
            if selector.select(0 if exited else min(left, POLL_S)):
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    data += chunk[: max(0, MAX_RECORD_BYTES - len(data))]
                    continue
                try:  # end of file: the child closed the pipe; give it the rest of its time to exit
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return bytes(data), True
                return bytes(data), False
            if exited:
                return bytes(data), False
    return bytes(data), True


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (grandchildren included), then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone
    proc.wait()


def run_child(cmd: list[str], env: dict[str, str], work: Path, key: bytes, seconds: float) -> ChildRun:
    """Start one grading child in `work` with `key` on a pipe, collect its records, kill its process group."""
    key_read, key_write = os.pipe()
    os.write(key_write, key)  # far below a pipe's buffer, so this never blocks
    os.close(key_write)
    record_read, record_write = os.pipe()
    env = {**env, KEY_FD: str(key_read), RECORD_FD: str(record_write)}
    output_path = work.parent / f"{work.name}.out"
    try:
        with open(output_path, "wb") as output:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(key_read, record_write),
                start_new_session=True,
            )
    finally:
        os.close(key_read)
        os.close(record_write)
    try:
        records, late = _read_records(proc, record_read, time.monotonic() + seconds)
    finally:
        _kill_group(proc)
        os.close(record_read)
    output = output_path.read_bytes()[-20000:].decode(errors="replace")
    return ChildRun(records, None if late else proc.returncode, seconds if late else None, output)


def _why(output: str) -> str:
    """pytest's one-line summary of collection or usage errors, else its last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error:", "pytest: error", "E "))]
    return "; ".join(errors[:3]) if errors else (lines[-1] if lines else "no output")


def score(name: str, run: ChildRun, key: bytes) -> ExerciseScore:
    """Points for every check of the manifest that carries a valid signature; the child's messages explain the rest."""
    records = []
    for line in run.records.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and all(isinstance(v, str) for v in record.values()):
            records.append(record)
    collected = {r["collected"] for r in records if "collected" in r}
    if (
        not collected and run.stopped_after is None
    ):  # nothing graded has run before collection ends: the checks are broken
        errors = [r["error"] for r in records if "error" in r]
        raise LabError(f"the grading checks of {name} could not run: {'; '.join(errors[:3]) or _why(run.output)}")
    passed = {
        r["passed"]
        for r in records
        if "passed" in r and hmac.compare_digest(r.get("token", "").encode(), token(key, r["passed"]).encode())
    }
    messages: dict[str, str] = {}
    for r in records:
        if "failed" in r:  # shown, never trusted: one printable line, so it cannot draw a fake table on the terminal
            messages.setdefault(
                r["failed"], "".join(c if c.isprintable() else " " for c in r.get("message", ""))[:MESSAGE_CHARS]
            )
    if run.stopped_after is not None:
        unfinished = f"not run: the exercise ran past its {run.stopped_after:.0f} s and was stopped"
    else:
        unfinished = (
            f"no verdict: no signed pass came back (the grading process ended with exit status {run.returncode})"
        )
    result = ExerciseScore(name)
    for check, points in CHECKS[name].items():
        nodeid = f"test_{name}.py::{check}"
        result.possible += points
        if nodeid in passed:
            result.earned += points
            result.checks.append(CheckResult(check, points, points))
        else:
            why = messages.get(nodeid) or (
                unfinished if nodeid in collected or run.stopped_after is not None else "missing from the check file"
            )
            result.failures.append(f"{check.removeprefix('test_')}: {why}")
            result.checks.append(CheckResult(check, points, 0, why))
    return result


def _unscored(name: str, why: str) -> ExerciseScore:
    checks = [CheckResult(check, points, 0, why) for check, points in CHECKS[name].items()]
    return ExerciseScore(name, 0, sum(CHECKS[name].values()), [f"all checks: {why}"], checks)


def run_checks(
    target: str = "exercises", only: str = "", timeout: float = 60.0, sandbox: bool = False
) -> list[ExerciseScore]:
    """Grade the exercise files in folder `target`; one score per exercise of the manifest."""
    if timeout <= 0:
        raise LabError(f"--timeout must be positive, got {timeout}")
    names = exercises(only)
    folder = target_folder(target)
    if not any((folder / f"{name}.py").is_file() for name in names):
        raise LabError(f"{folder} holds none of the exercise files ({', '.join(f'{n}.py' for n in names)})")
    if folder != ROOT / "solutions" and (found := borrowed_answer(folder)):  # the reference itself is graded as it is
        path, line, name = found
        raise LabError(f"{path} line {line} imports `{name}`, a reference answer: grading needs your own code")
    handed_in = read_tree(folder)
    handed_in.setdefault("__init__.py", b"")  # a regular package, so it shadows the lab's own `exercises`
    checks = read_checks(names)
    lab_code = (
        {f"{top}/{name}": data for top in ("lab", "plugins") for name, data in read_tree(ROOT / top).items()}
        if sandbox
        else {}
    )
    prefix, missing_fence = grade_sandbox.isolation() if sandbox else ([], "")
    if missing_fence:
        print(f"lab grade: note: grading without network isolation: {missing_fence}", file=sys.stderr)

    def grade_one(name: str, tmp: Path) -> ExerciseScore:
        if not (folder / f"{name}.py").is_file():
            return _unscored(name, f"{name}.py is not in {folder}")
        if checks[f"test_{name}.py"] is None:
            return _unscored(
                name, f"check file missing: restore tests/grading/test_{name}.py (git checkout tests/grading)"
            )
        work = tmp / name
        _write_tree(
            work / "checks",
            {
                "conftest.py": checks["conftest.py"],
                f"test_{name}.py": checks[f"test_{name}.py"],
                "pytest.ini": b"[pytest]\n",
            },
        )
        _write_tree(work / PACKAGE, handed_in)
        _write_tree(work, lab_code)
        (work / "tmp").mkdir()
        seconds = STARTUP_S + timeout * len(CHECKS[name])
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            f"checks/test_{name}.py",
            "-q",
            "-p",
            "lab.course.grade_child",
            "-p",
            "pytest_timeout",
        ]
        cmd += ["-p", "no:cacheprovider", "-c", "checks/pytest.ini", "--rootdir", "checks", "--confcutdir", "checks"]
        cmd += ["--basetemp", str(work / "tmp" / "pytest"), f"--timeout={timeout:g}"]
        key = secrets.token_bytes(32)
        return score(name, run_child(cmd, _child_env(work, sandbox, seconds), work, key, seconds), key)

    with (
        tempfile.TemporaryDirectory(prefix="lab-grade-", ignore_cleanup_errors=True) as tmp,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        return list(pool.map(lambda name: grade_one(name, Path(tmp)), names))


def _child_env(work: Path, sandbox: bool, seconds: float) -> dict[str, str]:
    """The child's environment: yours minus what steers pytest or imports, or the sandbox's minimal one with limits."""
    if sandbox:
        env = {**grade_sandbox.environment(work), LIMITS: json.dumps(grade_sandbox.limits(int(2 * seconds)))}
    else:
        env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROPPED}
    path = (
        [str(work)] if sandbox else [str(work), str(ROOT)]
    )  # the handed-in package first, so it shadows the lab's stubs
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(path),
        "LAB_GRADE_TARGET": PACKAGE,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def main(args: argparse.Namespace) -> int:
    """`lab grade`: exit 0 at full marks, 1 below. `--format` writes the scores for other tools, to `--out` or stdout."""
    out = Path(args.out) if args.out else None
    if out and out.exists() and not args.force:  # refused before anything is graded
        raise LabError(f"{out} exists; use --force to overwrite it")
    scores = run_checks(args.target, args.only, args.timeout, args.sandbox)
    if args.format == "table" or out:
        print(grade_report.format_table(scores))
    if out or args.format != "table":
        report = grade_report.render(scores, args.format, str(target_folder(args.target)))
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, lambda tmp: tmp.write_text(report))
            print(f"wrote {out} ({args.format})")
        else:
            print(report, end="")
    full = all(s.earned == s.possible for s in scores)
    if not full and args.target in ("exercises", "solutions"):
        print(f"\ndetails: LAB_GRADE_TARGET={args.target} pytest tests/grading/test_<exercise>.py", file=sys.stderr)
    return 0 if full else 1
