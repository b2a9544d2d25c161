"""`lab grade --format json|gradescope|junit [--out FILE]`: reports other tools read, made from verified results only."""

import json
import secrets
import xml.etree.ElementTree as ET

import pytest

from lab.cli import main as cli_main
from lab.course import grade, grade_report
from lab.course.grade_child import token

GRADESCOPE_TOP = {"score", "output", "visibility", "stdout_visibility", "tests"}  # Gradescope autograder results.json
GRADESCOPE_TEST = {"name", "number", "score", "max_score", "status", "output", "visibility"}
VISIBILITY = {"visible", "hidden", "after_due_date", "after_published"}


@pytest.fixture
def scores() -> list[grade.ExerciseScore]:
    """ex06 with one signed pass, one forged pass and failures; ex01 unscored as a whole."""
    key = secrets.token_bytes(32)
    ex06 = [f"test_ex06_loss.py::{check}" for check in grade.CHECKS["ex06_loss"]]  # worth 3, 1, 3, 1, 2
    records = [{"collected": n} for n in ex06] + [
        {"passed": ex06[0], "token": token(key, ex06[0])},
        {"passed": ex06[1], "token": "0" * 64},  # forged: scores nothing in any format
        {"failed": ex06[3], "message": 'AssertionError: off by <one> & "two"'},
    ]
    run = grade.ChildRun("".join(json.dumps(r) + "\n" for r in records).encode(), 0, None, "")
    return [grade._unscored("ex01_captions", "ex01_captions.py is not in /x"), grade.score("ex06_loss", run, key)]


def test_gradescope_results_follow_the_documented_schema(scores):
    report = json.loads(grade_report.render(scores, "gradescope", "/x"))
    assert (
        set(report) == GRADESCOPE_TOP
        and report["visibility"] in VISIBILITY
        and report["stdout_visibility"] in VISIBILITY
    )
    tests = report["tests"]
    assert len(tests) == len(grade.CHECKS["ex01_captions"]) + len(grade.CHECKS["ex06_loss"])
    for t in tests:
        assert (
            set(t) == GRADESCOPE_TEST
            and t["visibility"] in VISIBILITY
            and isinstance(t["name"], str)
            and isinstance(t["output"], str)
        )
        assert isinstance(t["score"], float) and isinstance(t["max_score"], float) and 0 <= t["score"] <= t["max_score"]
        assert t["status"] == ("passed" if t["score"] == t["max_score"] else "failed")
    assert len({t["name"] for t in tests}) == len(tests) and len({t["number"] for t in tests}) == len(tests)
    assert report["score"] == sum(t["score"] for t in tests) == 3.0, "only the signed pass scores"
    assert [t["status"] for t in tests[-5:]] == ["passed", "failed", "failed", "failed", "failed"]
    assert tests[-2]["output"] == 'AssertionError: off by <one> & "two"' and "total" in report["output"]


def test_junit_parses_back_with_one_testcase_per_check(scores):
    root = ET.fromstring(grade_report.render(scores, "junit", "/x"))
    assert root.tag == "testsuites" and int(root.get("tests")) == 12 and int(root.get("failures")) == 11
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["ex01_captions", "ex06_loss"]
    ex06 = suites["ex06_loss"]
    cases = ex06.findall("testcase")
    assert [c.get("name") for c in cases] == list(grade.CHECKS["ex06_loss"]) and all(
        c.get("classname") == "exercises.ex06_loss" for c in cases
    )
    assert [c.find("failure") is None for c in cases] == [True, False, False, False, False]
    assert cases[3].find("failure").get("message") == 'AssertionError: off by <one> & "two"'
    assert {p.get("name"): p.get("value") for p in ex06.iter("property")} == {"score": "3", "max_score": "10"}
    assert all(
        c.find("failure").get("message") == "ex01_captions.py is not in /x"
        for c in suites["ex01_captions"].findall("testcase")
    )


def test_json_report_totals_its_checks(scores):
    report = json.loads(grade_report.render(scores, "json", "/x"))
    assert (report["target"], report["score"], report["max_score"]) == ("/x", 3, sum(s.possible for s in scores))
    for exercise, score in zip(report["exercises"], scores):
        assert exercise["score"] == sum(c["score"] for c in exercise["checks"]) == score.earned
        assert exercise["max_score"] == sum(c["max_score"] for c in exercise["checks"]) == score.possible


def test_cli_writes_reports_and_never_overwrites_without_force(tmp_path, capsys):
    out = tmp_path / "reports" / "ex01.xml"
    assert cli_main(["grade", "--target", "solutions", "--only", "ex01", "--format", "junit", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "total" in printed and f"wrote {out} (junit)" in printed
    root = ET.parse(out).getroot()
    assert int(root.get("tests")) == len(grade.CHECKS["ex01_captions"]) and root.get("failures") == "0"

    out.write_text("kept")
    assert cli_main(["grade", "--target", "solutions", "--only", "ex01", "--format", "json", "--out", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err and out.read_text() == "kept"
    assert (
        cli_main(
            ["grade", "--target", "exercises", "--only", "ex01", "--format", "gradescope", "--out", str(out), "--force"]
        )
        == 1
    )
    report = json.loads(out.read_text())
    assert report["score"] == 0 and all("NotImplementedError" in t["output"] for t in report["tests"])

    capsys.readouterr()
    assert cli_main(["grade", "--target", "solutions", "--only", "ex01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == sum(grade.CHECKS["ex01_captions"].values()), (
        "without --out the report goes to stdout, alone"
    )
