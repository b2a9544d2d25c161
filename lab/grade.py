"""`lab grade`: run the autograder (tests/grading) on the exercises or the solutions, print a score table.

The checks run in a pytest subprocess, so a student's infinite loop or crash
cannot take the lab down with it: pytest-timeout stops any check after
`--timeout` seconds, and a run that still hangs is stopped as a whole. The
grading conftest appends one JSON line per check to a report file as soon as
it is known, so even a stopped run is scored (checks never reached score 0).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError

ROOT = Path(__file__).resolve().parent.parent
GRADING_DIR = ROOT / "tests" / "grading"
TARGETS = ("exercises", "solutions")
WHOLE_RUN_MARGIN_S = 300  # on top of 3 timeouts per exercise file: only a check pytest-timeout cannot stop gets there
RANK = {"pending": 0, "passed": 1, "skipped": 2, "failed": 3}  # a later, worse outcome wins


@dataclass
class ExerciseScore:
    name: str  # e.g. "ex04_generator"
    earned: int = 0
    possible: int = 0
    failures: list[str] = field(default_factory=list)  # "check: first line of the error"


def check_files(only: str = "") -> list[Path]:
    """The grading files, or those of one exercise (`ex04` or `ex04_generator`)."""
    files = sorted(GRADING_DIR.glob("test_ex*.py"))
    if not files:
        raise LabError(f"no grading checks found in {GRADING_DIR}; `lab grade` runs from a source checkout")
    if not only:
        return files
    chosen = [f for f in files if f.stem.removeprefix("test_") == only or f.stem.startswith(f"test_{only}_")]
    if not chosen:
        names = ", ".join(f.stem.removeprefix("test_").split("_")[0] for f in files)
        raise LabError(f"no exercise '{only}'; choose one of {names}")
    return chosen


def read_report(path: Path) -> list[ExerciseScore]:
    """Fold the JSON lines into one score per exercise; checks that never ran count as failed."""
    checks: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        previous = checks.get(record["check"])
        if previous is None or RANK[record["outcome"]] >= RANK[previous["outcome"]]:
            checks[record["check"]] = record
    scores: dict[str, ExerciseScore] = {}
    for check, record in checks.items():
        score = scores.setdefault(record["exercise"], ExerciseScore(record["exercise"]))
        if record["outcome"] == "skipped":
            continue  # e.g. an optional model not installed: neither earned nor possible
        score.possible += record["points"]
        if record["outcome"] == "passed":
            score.earned += record["points"]
        else:
            reason = record.get("message", "not run: grading was stopped before this check")
            score.failures.append(f"{check.split('::')[-1].removeprefix('test_')}: {reason}")
    return [scores[name] for name in sorted(scores)]


def _why(output: str) -> str:
    """pytest's one-line summary of collection or usage errors, else its last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error:", "pytest: error"))]
    return "; ".join(errors[:3]) if errors else (lines[-1] if lines else "no output")


def run_checks(target: str, only: str = "", timeout: float = 60.0) -> list[ExerciseScore]:
    """Grade `target` ("exercises" or "solutions") in a pytest subprocess; returns the scores."""
    if target not in TARGETS:
        raise LabError(f"target must be one of {', '.join(TARGETS)}, got '{target}'")
    if timeout <= 0:
        raise LabError(f"--timeout must be positive, got {timeout}")
    files = check_files(only)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        env = {**os.environ, "LAB_GRADE_TARGET": target, "LAB_GRADE_REPORT": str(report)}
        cmd = [sys.executable, "-m", "pytest", *map(str, files), "-q", "-p", "no:cacheprovider", "-o", "addopts=", f"--timeout={timeout:g}"]
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WHOLE_RUN_MARGIN_S + 3 * timeout * len(files))
        except subprocess.TimeoutExpired:
            done = None  # stopped as a whole: the report still holds every check that finished
        if not report.is_file() or (done is not None and done.returncode not in (0, 1)):
            raise LabError(f"the grading checks could not run: {_why(done.stdout + done.stderr if done else '')}")
        return read_report(report)


def format_table(scores: list[ExerciseScore], width: int = 200) -> str:
    """One row per exercise: points and the first failure, on one line (cut only if absurdly long)."""
    rows = [f"{'exercise':<18} {'points':>7}  first failure"]
    for s in scores:
        failure = s.failures[0] if s.failures else ""
        line = f"{s.name:<18} {s.earned:>3}/{s.possible:<3}  {failure}"
        rows.append(line if len(line) <= width else line[: width - 1] + "…")
    earned, possible = sum(s.earned for s in scores), sum(s.possible for s in scores)
    percent = 100 * earned / possible if possible else 0.0
    rows.append(f"{'total':<18} {earned:>3}/{possible:<3}  {percent:.0f}%")
    return "\n".join(rows)


def main(args: argparse.Namespace) -> int:
    """`lab grade`: exit 0 at full marks, 1 below."""
    scores = run_checks(args.target, args.only, args.timeout)
    print(format_table(scores))
    full = all(s.earned == s.possible for s in scores)
    if not full:
        print(f"\ndetails: LAB_GRADE_TARGET={args.target} pytest tests/grading/test_<exercise>.py", file=sys.stderr)
    return 0 if full else 1
