"""`lab grade --format`: the scores for other tools: the lab's own JSON, Gradescope's results.json, JUnit XML.

Every report is written from the `ExerciseScore`s that `lab grade` computed
from signed results alone, in this process, after every child has ended:
nothing the graded code printed or wrote reaches a report except the one-line,
printable failure messages the table shows too.

- table: the score table `lab grade` prints, one line per exercise.
- json: the lab's own, exercise by exercise and check by check.
- gradescope: the autograder's `results.json` (`score`, `output`, `visibility`,
  and `tests` with `name`, `number`, `score`, `max_score`, `status`, `output`,
  `visibility`); an autograder's `run_autograder` writes it to
  `/autograder/results/results.json`.
- junit: one `<testsuite>` per exercise, one `<testcase>` per check, a
  `<failure>` with its message where it failed; points as testsuite properties
  (JUnit has no points), read by CI systems and LMS plugins.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

FORMATS = ("table", "json", "gradescope", "junit")


@dataclass
class CheckResult:
    """One check of the manifest: its points, what it earned (all or nothing), and why not when it failed."""

    name: str  # pytest node name inside the exercise's check file, e.g. "test_output_is_tanh_range"
    points: int
    earned: int
    message: str = ""  # one line: what failed, expected against got, where
    detail: str = ""  # more lines for `lab grade -v`: the code line, the assertion's explanation


@dataclass
class ExerciseScore:
    name: str  # e.g. "ex04_generator"
    earned: int = 0
    possible: int = 0
    failures: list[str] = field(default_factory=list)  # "check: first line of the error"
    checks: list[CheckResult] = field(default_factory=list)  # every check of the manifest, in its order


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


def _grouped(checks: list[CheckResult]) -> list[tuple[list[str], CheckResult]]:
    """Failed checks with their message, consecutive checks that failed alike merged (one syntax error, not nine)."""
    groups: list[tuple[list[str], CheckResult]] = []
    for c in checks:
        if c.earned == c.points:
            continue
        if groups and (groups[-1][1].message, groups[-1][1].detail) == (c.message, c.detail):
            groups[-1][0].append(c.name.removeprefix("test_"))
        else:
            groups.append(([c.name.removeprefix("test_")], c))
    return groups


def format_failures(scores: list[ExerciseScore], verbose: bool = False) -> str:
    """Every failed check, exercise by exercise, one line each (with `verbose`, its details below it)."""
    lines = []
    for s in scores:
        failed = [c for c in s.checks if c.earned < c.points]
        if not failed:
            continue
        lines.append(f"{s.name} ({s.earned}/{s.possible}): {len(failed)} of {len(s.checks)} checks failed")
        for names, c in _grouped(s.checks):
            label = f"all {len(names)} checks" if len(names) == len(s.checks) > 1 else ", ".join(names)
            lines.append(f"  - {label}: {c.message}")
            if verbose and c.detail:
                lines += [f"      {line}" for line in c.detail.splitlines()]
    return "\n".join(lines)


def _output(c: CheckResult) -> str:
    return f"{c.message}\n{c.detail}" if c.detail else c.message


def as_json(scores: list[ExerciseScore], target: str) -> dict:
    return {
        "target": target,
        "score": sum(s.earned for s in scores),
        "max_score": sum(s.possible for s in scores),
        "exercises": [
            {
                "name": s.name,
                "score": s.earned,
                "max_score": s.possible,
                "checks": [
                    {
                        "name": c.name,
                        "score": c.earned,
                        "max_score": c.points,
                        "passed": c.earned == c.points,
                        "message": c.message,
                        "detail": c.detail,
                    }
                    for c in s.checks
                ],
            }
            for s in scores
        ],
    }


def as_gradescope(scores: list[ExerciseScore]) -> dict:
    tests = [
        {
            "name": f"{s.name}: {c.name.removeprefix('test_')}",
            "number": f"{i}.{j}",
            "score": float(c.earned),
            "max_score": float(c.points),
            "status": "passed" if c.earned == c.points else "failed",
            "output": _output(c),
            "visibility": "visible",
        }
        for i, s in enumerate(scores, 1)
        for j, c in enumerate(s.checks, 1)
    ]
    return {
        "score": float(sum(s.earned for s in scores)),
        "output": format_table(scores),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def as_junit(scores: list[ExerciseScore]) -> str:
    failures = sum(c.earned < c.points for s in scores for c in s.checks)
    root = ET.Element(
        "testsuites", name="lab grade", tests=str(sum(len(s.checks) for s in scores)), failures=str(failures)
    )
    for s in scores:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=s.name,
            tests=str(len(s.checks)),
            failures=str(sum(c.earned < c.points for c in s.checks)),
            errors="0",
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="score", value=str(s.earned))
        ET.SubElement(properties, "property", name="max_score", value=str(s.possible))
        for c in s.checks:
            case = ET.SubElement(suite, "testcase", classname=f"exercises.{s.name}", name=c.name)
            if c.earned < c.points:
                ET.SubElement(case, "failure", message=c.message, type="check failed").text = _output(c)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render(scores: list[ExerciseScore], fmt: str, target: str) -> str:
    """The report in `fmt` (one of FORMATS) as text."""
    if fmt == "table":
        return format_table(scores) + "\n"
    if fmt == "junit":
        return as_junit(scores)
    return (
        json.dumps(as_json(scores, target) if fmt == "json" else as_gradescope(scores), indent=2, ensure_ascii=False)
        + "\n"
    )
