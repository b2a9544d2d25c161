"""`lab grade`: grade a folder of exercise files against the course checks, print a score table.

The graded code is not trusted, so this process decides every verdict and
never runs student code itself:

- It reads the checks (`tests/grading/`) once, verifies them against the fixed
  manifest (`lab/course/grade_manifest.py`: exercises, checks, points, file hashes),
  and scores against that manifest: a check without a verdict scores 0.
- It refuses files that import `solutions`, or the lab's own implementation of
  an exercise (the manifest's `LAB_ANSWERS`), under any name (`lab.course.grade_imports`);
  the child blocks `solutions` at run time and fails checks whose module holds an answer object.
- It runs one pytest child per exercise in a throw-away folder holding fresh
  copies of the checks and of the handed-in files, in a new process group that
  is killed as a whole when the child ends or runs past its time; as a child
  subreaper it then kills whatever else the graded code left running
  (`lab.course.grade_reaper`), so nothing it started outlives grading.
- It reads the child's output as it comes and keeps only its tail: a flood
  costs time, not memory.
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
import hashlib
import hmac
import json
import os
import re
import secrets
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lab.course import grade_imports, grade_report, grade_sandbox
from lab.course.grade_child import (
    ANSWERS,
    DETAIL_CHARS,
    KEY_FD,
    LIMITS,
    MESSAGE_CHARS,
    PACKAGE,
    RECORD_FD,
    printable,
    token,
)
from lab.course.grade_manifest import CHECKS, LAB_ANSWERS, SHA256
from lab.course.grade_reaper import Reaper
from lab.course.grade_report import CheckResult, ExerciseScore
from lab.errors import LabError
from lab.files import atomic_write

ROOT = Path(__file__).resolve().parents[2]  # the checkout: lab/course/grade.py -> repository root
GRADING_DIR = ROOT / "tests" / "grading"
STARTUP_S = 60  # a child's allowance for imports and collection, on top of `timeout` per check
WORKERS = 2  # children at a time: the lab's machine has 2 cores, and each child uses one thread
POLL_S = 0.2
HEARTBEAT_S = 10.0  # while grading, a line at least this often says what is still running
MAX_RECORD_BYTES = 1 << 20  # what a child may send; more is a flood and is dropped
OUTPUT_TAIL = 20_000  # bytes of a child's console output kept (for errors before any check runs)
DRAIN_BYTES = 4 << 20  # read after the child exited: a stray writer cannot keep the grader reading
STARTED = re.compile(rb'"started": "([^"]{1,300})"')
CHILD_ENV_DROPPED = (
    "PYTHONPATH",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "LAB_GRADE_TARGET",
    KEY_FD,
    RECORD_FD,
    LIMITS,
    ANSWERS,
)


@dataclass
class ChildRun:
    """What one grading child left: its records (untrusted bytes), how it ended, its console output."""

    records: bytes
    returncode: int | None
    stopped_after: float | None  # seconds, when it ran past its time and was killed
    output: str


def exercises(only: str | list[str] = "") -> list[str]:
    """The manifest's exercises, or those named by `only` (`ex04`, `ex04_generator`, a list, or `ex04,ex06`)."""
    names = sorted(CHECKS)
    asked = [part.strip() for item in ([only] if isinstance(only, str) else only) for part in item.split(",")]
    asked = [a for a in asked if a]
    if not asked:
        return names
    chosen = set()
    for one in asked:
        match = [n for n in names if n == one or n.startswith(f"{one}_")]
        if not match:
            raise LabError(f"no exercise '{one}'; choose one of {', '.join(n.split('_')[0] for n in names)}")
        chosen.update(match)
    return sorted(chosen)


def target_folder(target: str) -> Path:
    """`--target`: a folder as given, else one of the lab's own (`exercises`, `solutions`)."""
    for folder in (Path(target).expanduser(), ROOT / target):
        if folder.is_dir():
            return folder.resolve()
    raise LabError(f"--target {target}: no such folder")


def shown(folder: Path) -> str:
    """`folder` as the student would type it: relative to the current folder when inside it."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def lab_answers(names: list[str] | None = None) -> set[str]:
    """The lab's own implementations of exercises `names` (default all): `LAB_ANSWERS` in the manifest.

    Importing one of these is handing in the answer just as surely as importing `solutions`."""
    return {answer for name, answers in LAB_ANSWERS.items() if names is None or name in names for answer in answers}


def borrowed_answer(folder: Path) -> tuple[Path, int, str] | None:
    """The first Python file in `folder` that reaches `solutions` or one of the lab's own answers: file, line, name."""
    answers = lab_answers()
    for path in sorted(folder.rglob("*.py")):
        try:
            found = grade_imports.borrowed(path.read_bytes(), answers)
        except (SyntaxError, ValueError):
            continue  # it cannot import anything; its checks fail with the syntax error
        if found:
            return path, *found
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


def _collect(
    proc: subprocess.Popen, records_fd: int, output_fd: int, deadline: float, status: dict[str, str]
) -> tuple[bytes, bytes, bool]:
    """Read the record pipe and the console pipe until the child exits: (records, output tail, ran out of time).

    Both are read as they come, so a child is never blocked on a full pipe, and
    bounded: records up to MAX_RECORD_BYTES, output only its last OUTPUT_TAIL bytes.
    `status["check"]` follows the check the child says it started (for progress lines only)."""
    records, output = bytearray(), bytearray()
    drained = 0
    with selectors.DefaultSelector() as selector:
        for fd in (records_fd, output_fd):
            selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            exited = proc.poll() is not None
            if not selector.get_map():  # every writer closed both pipes: give the child the rest of its time to exit
                try:
                    proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    return bytes(records), bytes(output), True
                return bytes(records), bytes(output), False
            ready = selector.select(0 if exited else min(left, POLL_S))
            for key, _ in ready:
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.fd == records_fd:
                    records += chunk[: max(0, MAX_RECORD_BYTES - len(records))]
                    if started := STARTED.findall(chunk):
                        status["check"] = printable(
                            started[-1].decode(errors="replace").split("::")[-1].removeprefix("test_"), 80
                        )
                else:
                    output += chunk
                    del output[:-OUTPUT_TAIL]
                drained += len(chunk) if exited else 0
            if exited and (not ready or drained > DRAIN_BYTES):
                return bytes(records), bytes(output), False
    return bytes(records), bytes(output), True


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (grandchildren included), then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone
    proc.wait()


def run_child(
    cmd: list[str],
    env: dict[str, str],
    work: Path,
    key: bytes,
    seconds: float,
    reaper: Reaper | None = None,
    status: dict[str, str] | None = None,
) -> ChildRun:
    """Start one grading child in `work` with `key` on a pipe, collect its records, then kill everything it started."""
    reaper = reaper or Reaper()
    key_read, key_write = os.pipe()
    os.write(key_write, key)  # far below a pipe's buffer, so this never blocks
    os.close(key_write)
    record_read, record_write = os.pipe()
    output_read, output_write = os.pipe()
    env = {**env, KEY_FD: str(key_read), RECORD_FD: str(record_write)}
    try:
        with reaper.starting():
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output_write,
                stderr=subprocess.STDOUT,
                pass_fds=(key_read, record_write),
                start_new_session=True,
            )
            reaper.wait_on(proc.pid)
    finally:
        for fd in (key_read, record_write, output_write):
            os.close(fd)
    try:
        records, output, late = _collect(
            proc, record_read, output_read, time.monotonic() + seconds, {} if status is None else status
        )
    finally:
        _kill_group(proc)
        reaper.done_with(proc.pid)
        reaper.sweep()
        os.close(record_read)
        os.close(output_read)
    return ChildRun(
        records, None if late else proc.returncode, seconds if late else None, output.decode(errors="replace")
    )


def _why(output: str) -> str:
    """pytest's one-line summary of collection or usage errors, else its last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error:", "pytest: error", "E "))]
    return "; ".join(errors[:3]) if errors else (lines[-1] if lines else "no output")


def score(name: str, run: ChildRun, key: bytes, folder: str = PACKAGE) -> ExerciseScore:
    """Points for every check of the manifest that carries a valid signature; the child's messages explain the rest.

    `folder` is how the student names the handed-in folder: an error's place reads `exercises/ex06_loss.py:37`."""
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
        errors = [printable(r["error"], MESSAGE_CHARS) for r in records if "error" in r]
        raise LabError(f"the grading checks of {name} could not run: {'; '.join(errors[:3]) or _why(run.output)}")
    passed = {
        r["passed"]
        for r in records
        if "passed" in r and hmac.compare_digest(r.get("token", "").encode(), token(key, r["passed"]).encode())
    }
    failed: dict[str, tuple[str, str]] = {}
    for r in records:  # shown, never trusted: printable and bounded, so it cannot draw a fake table on the terminal
        if "failed" in r and r["failed"] not in failed:
            message, where = printable(r.get("message", ""), MESSAGE_CHARS), printable(r.get("where", ""), 200)
            message += f" at {folder}/{where}" if where else ""
            failed[r["failed"]] = (message, printable(r.get("detail", ""), DETAIL_CHARS, keep_lines=True))
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
            why, detail = failed.get(nodeid) or (
                unfinished if nodeid in collected or run.stopped_after is not None else "missing from the check file",
                "",
            )
            result.failures.append(f"{check.removeprefix('test_')}: {why}")
            result.checks.append(CheckResult(check, points, 0, why, detail))
    return result


def _unscored(name: str, why: str) -> ExerciseScore:
    checks = [CheckResult(check, points, 0, why) for check, points in CHECKS[name].items()]
    return ExerciseScore(name, 0, sum(CHECKS[name].values()), [f"all checks: {why}"], checks)


def run_checks(
    target: str = "exercises",
    only: str | list[str] = "",
    timeout: float = 60.0,
    sandbox: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ExerciseScore]:
    """Grade the exercise files in folder `target`; one score per exercise of the manifest.

    `progress` is told one line as each exercise finishes, and every HEARTBEAT_S
    which exercises are still running. When this returns, every process the
    graded code started has been killed and reaped."""
    if timeout <= 0:
        raise LabError(f"--timeout must be positive, got {timeout}")
    names = exercises(only)
    folder = target_folder(target)
    if not any((folder / f"{name}.py").is_file() for name in names):
        raise LabError(f"{folder} holds none of the exercise files ({', '.join(f'{n}.py' for n in names)})")
    reference = folder == ROOT / "solutions"  # the reference itself is graded as it is
    if not reference and (found := borrowed_answer(folder)):
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
    say = progress or (lambda line: None)
    started: dict[str, float] = {}
    running: dict[str, dict[str, str]] = {name: {} for name in names}  # exercise -> the check it is on

    def grade_one(name: str, tmp: Path, reaper: Reaper) -> ExerciseScore:
        started[name] = time.monotonic()
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
        env = _child_env(work, sandbox, seconds)
        env[ANSWERS] = json.dumps([] if reference else sorted(lab_answers([name])))
        key = secrets.token_bytes(32)
        return score(name, run_child(cmd, env, work, key, seconds, reaper, running[name]), key, shown(folder))

    say(
        f"grading {len(names)} exercise{'s' * (len(names) > 1)} in {shown(folder)}, {min(WORKERS, len(names))} at a time"
        f" (a check may take up to {timeout:g} s)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="lab-grade-", ignore_cleanup_errors=True) as tmp,
        Reaper() as reaper,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        futures = {pool.submit(grade_one, name, Path(tmp), reaper): name for name in names}
        try:
            _follow(futures, started, running, say)
        except BaseException:  # Ctrl-C or an error: stop the other children now rather than wait for them
            for future in futures:
                future.cancel()
            reaper.stop()
            raise
        return [future.result() for future in futures]


def _follow(
    futures: dict, started: dict[str, float], running: dict[str, dict[str, str]], say: Callable[[str], None]
) -> None:
    """Wait for every exercise: a line as each finishes, one every HEARTBEAT_S naming those still running."""
    pending, total = set(futures), len(futures)
    while pending:
        done, pending = wait(pending, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
        now = time.monotonic()
        for future in done:
            s = future.result()
            took = now - started.get(s.name, now)
            say(f"  [{total - len(pending)}/{total}] {s.name:<18} {s.earned:>3}/{s.possible:<3} in {took:.0f} s")
        busy = sorted(futures[f] for f in pending if futures[f] in started)
        if not done and busy:
            say(
                "  ... still running: "
                + ", ".join(f"{n} ({now - started[n]:.0f} s, {running[n].get('check', 'starting')})" for n in busy)
            )


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


def details_command(folder: Path, scores: list[ExerciseScore]) -> str | None:
    """The command that reruns the failed checks of the files in `folder` with full tracebacks, from any folder."""
    files = [
        str(GRADING_DIR / f"test_{s.name}.py")
        for s in scores
        if s.earned < s.possible and (folder / f"{s.name}.py").is_file()
    ]
    if not files:
        return None
    return f"LAB_GRADE_TARGET={shlex.quote(str(folder))} " + shlex.join([sys.executable, "-m", "pytest", *files])


def main(args: argparse.Namespace) -> int:
    """`lab grade`: exit 0 at full marks, 1 below. `--format` writes the scores for other tools, to `--out` or stdout.

    Progress goes to stderr as each exercise finishes; then every failing check
    (`-v`: with its details) and the score table. A report is written only after
    every process the graded code started is dead, and atomically."""
    out = Path(args.out) if args.out else None
    if out and out.exists() and not args.force:  # refused before anything is graded
        raise LabError(f"{out} exists; use --force to overwrite it")
    scores = run_checks(
        args.target, args.only, args.timeout, args.sandbox, lambda line: print(line, file=sys.stderr, flush=True)
    )
    if args.format == "table" or out:
        if failures := grade_report.format_failures(scores, getattr(args, "verbose", False)):
            print(failures + "\n")
        print(grade_report.format_table(scores))
    if out or args.format != "table":
        report = grade_report.render(scores, args.format, str(target_folder(args.target)))
        if out:
            atomic_write(out, lambda tmp: tmp.write_text(report))
            print(f"wrote {out} ({args.format})")
        else:
            print(report, end="")
    full = all(s.earned == s.possible for s in scores)
    if not full and (command := details_command(target_folder(args.target), scores)):
        print(f"\nfull tracebacks (from any folder): {command}", file=sys.stderr)
    return 0 if full else 1
