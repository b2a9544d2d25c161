"""The course kit: stubs mirror the solutions, the autograder scores 0% / 100% and cannot be fooled, student parts train for real."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from lab.cli import build_parser
from lab.cli import main as cli_main
from lab.course import grade, grade_sandbox
from lab.course.grade_child import token
from lab.errors import LabError

EXERCISES = sorted(p.stem for p in (Path(__file__).parent.parent / "exercises").glob("ex*.py"))
TOTAL = sum(sum(checks.values()) for checks in grade.CHECKS.values())  # 96 points


def _public_api(module) -> dict[str, object]:
    """Functions and classes the module itself defines (not those it imports)."""
    return {
        n: o
        for n, o in vars(module).items()
        if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__
    }


def _assert_same_parameters(stub, reference, name: str) -> None:
    """The stub's parameters open the reference's, in order and with the same defaults; the lab's own
    class may take more settings after them (e.g. variants' options), all with defaults."""
    mine, theirs = (
        list(inspect.signature(stub).parameters.values()),
        list(inspect.signature(reference).parameters.values()),
    )
    assert [str(p) for p in mine] == [str(p) for p in theirs[: len(mine)]], name
    assert all(p.default is not inspect.Parameter.empty for p in theirs[len(mine) :]), name


def test_every_exercise_has_a_solution_and_a_grading_file():
    assert len(EXERCISES) == 8
    solutions = sorted(p.stem for p in (Path(__file__).parent.parent / "solutions").glob("ex*.py"))
    assert solutions == EXERCISES
    assert sorted(grade.CHECKS) == EXERCISES
    assert all((grade.GRADING_DIR / f"test_{name}.py").is_file() for name in EXERCISES)


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_signatures_match_the_solution(name):
    stub, solution = importlib.import_module(f"exercises.{name}"), importlib.import_module(f"solutions.{name}")
    api = _public_api(stub)
    assert api and sorted(api) == sorted(_public_api(solution))
    for obj_name, obj in api.items():
        reference = getattr(solution, obj_name)
        if not inspect.isclass(obj):
            assert inspect.signature(obj) == inspect.signature(reference), obj_name
            continue
        for attr, member in vars(obj).items():
            if isinstance(member, property):
                assert isinstance(inspect.getattr_static(reference, attr), property), f"{obj_name}.{attr}"
            elif inspect.isfunction(member):
                _assert_same_parameters(member, getattr(reference, attr), f"{obj_name}.{attr}")


class _Collected:
    """Keeps the items of a nested pytest collection."""

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.items = list(items)


def test_manifest_matches_the_check_files():
    """lab/course/grade_manifest.py lists every check with its points and the hash of every file the grader trusts."""
    collected = _Collected()
    assert (
        pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", str(grade.GRADING_DIR)], plugins=[collected])
        == 0
    )
    found: dict[str, dict[str, int]] = {}
    for item in collected.items:
        marker = item.get_closest_marker("points")
        found.setdefault(item.path.stem.removeprefix("test_"), {})[item.name] = marker.args[0] if marker else 1
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(grade.GRADING_DIR.glob("*.py"))}
    assert found == grade.CHECKS, f"update CHECKS in lab/course/grade_manifest.py to {json.dumps(found, indent=4)}"
    assert hashes == grade.SHA256, f"update SHA256 in lab/course/grade_manifest.py to {json.dumps(hashes, indent=4)}"


def test_only_checks_signed_with_the_run_key_score():
    key = secrets.token_bytes(32)
    ex06 = [f"test_ex06_loss.py::{check}" for check in grade.CHECKS["ex06_loss"]]  # worth 3, 1, 3, 1, 2
    records = [{"collected": nodeid} for nodeid in ex06] + [
        {"passed": ex06[0], "token": token(key, ex06[0])},
        {"passed": ex06[1], "token": token(secrets.token_bytes(32), ex06[1])},
        {"passed": ex06[2], "token": "0" * 64},
        {"failed": ex06[3], "message": "AssertionError: off by one"},
        {"passed": ex06[4], "token": "ü" * 64},
        {"failed": ex06[4], "message": "spoof\ntotal  96/96  100%\x1b[2J"},
    ]
    run = grade.ChildRun(b"not json\n" + "".join(json.dumps(r) + "\n" for r in records).encode(), 0, None, "")
    result = grade.score("ex06_loss", run, key)
    assert (result.earned, result.possible) == (3, 10)
    assert result.failures[2:] == [
        "generator_loss_weights: AssertionError: off by one",
        "gradients_flow_to_fakes_only: spoof total  96/96  100% [2J",
    ]
    assert all("no verdict" in f for f in result.failures[:2])

    stopped = grade.score("ex06_loss", grade.ChildRun(b"", None, 70.0, ""), key)
    assert stopped.earned == 0 and all("ran past its 70 s" in f for f in stopped.failures)
    with pytest.raises(LabError, match="ex06_loss could not run: test_ex06_loss.py: boom"):
        grade.score("ex06_loss", grade.ChildRun(b'{"error": "test_ex06_loss.py: boom"}\n', 2, None, ""), key)


def test_grade_rejects_unknown_exercise_and_missing_folder(tmp_path, capsys):
    assert cli_main(["grade", "--only", "ex99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ex99" in err and "ex01" in err
    assert cli_main(["grade", "--target", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"lab grade: error: --target {tmp_path / 'nowhere'}: no such folder\n"


def _hand_in(folder: Path, files: dict[str, str]) -> Path:
    """A folder of student files, as `lab grade --target` takes it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(source)
    return folder


def _own_copy(module: str) -> str:
    """An implementation of an exercise (the lab's or the solution's) pasted into a student file: a correct
    answer that imports no answer."""
    source = (grade.ROOT / module).read_text().replace("from .errors import", "from lab.errors import")
    return "".join(line for line in source.splitlines(keepends=True) if "LOSSES" not in line)  # no second registration


@pytest.mark.parametrize(
    "line, name",
    [
        ("from solutions.ex04_generator import *", "solutions.ex04_generator"),
        ("import solutions.ex04_generator as reference", "solutions.ex04_generator"),
        ("from solutions import ex04_generator", "solutions"),
        ("Generator = importlib.import_module('solutions.ex04_generator').Generator", "solutions.ex04_generator"),
        ("reference = __import__('solutions')", "solutions"),
        ("SPEC = 'solutions.ex04_generator:Generator'  # for build_parts", "solutions.ex04_generator.Generator"),
        ("from plugins.dcgan import DCGANGenerator as Generator", "plugins.dcgan.DCGANGenerator"),
        ("import plugins.dcgan; Generator = plugins.dcgan.DCGANGenerator", "plugins.dcgan.DCGANGenerator"),
        ("from plugins.dcgan import *", "plugins.dcgan.*"),
        ("from plugins.course import CourseGenerator as Generator", "plugins.course.CourseGenerator"),
        ("import lab.data.captions as _c; load_captions = _c.load_captions", "lab.data.captions.load_captions"),
        ("from lab.data import captions; f = captions.read_caption_file", "lab.data.captions.read_caption_file"),
        (
            "import importlib; m = importlib.import_module('plugins.dcgan'); G = m.DCGANGenerator",
            "plugins.dcgan.DCGANGenerator",
        ),
        (
            "m = __import__('plugins.dcgan', fromlist=['x']); G = getattr(m, 'DCGANGenerator')",
            "plugins.dcgan.DCGANGenerator",
        ),
        ("import sys; m = sys.modules['plugins.dcgan']; n = m; G = n.DCGANGenerator", "plugins.dcgan.DCGANGenerator"),
        (
            "from importlib import import_module as im; G = im('lab.train.trainer').train_step",
            "lab.train.trainer.train_step",
        ),
    ],
)
def test_files_that_import_an_answer_are_refused(tmp_path, capsys, line, name):
    folder = _hand_in(tmp_path, {"ex04_generator.py": f'"""My generator."""\n{line}\n', "ex06_loss.py": "x = 1\n"})
    assert cli_main(["grade", "--target", str(folder)]) == 2
    expected = f"lab grade: error: {folder / 'ex04_generator.py'} line 2 imports `{name}`, a reference answer: grading needs your own code\n"
    assert capsys.readouterr().err == expected


def test_the_given_helpers_are_not_answers(tmp_path):
    helpers = "from lab.data.captions import CaptionSet, clean_caption\nfrom plugins.course import channel_plan, text_projection\n"
    assert grade.borrowed_answer(_hand_in(tmp_path, {"ex04_generator.py": helpers})) is None
    assert grade.borrowed_answer(grade.ROOT / "exercises") is None


EXIT_EARLY = textwrap.dedent('''
    """Attack (a): forge a pass for every check on every open descriptor, then exit "successfully"."""
    import json, os
    from lab.course.grade_manifest import CHECKS
    forged = "".join(json.dumps({"passed": f"test_ex01_captions.py::{c}", "token": "0" * 64}) + "\\n" for c in CHECKS["ex01_captions"])
    for fd in range(3, 64):
        try:
            os.write(fd, forged.encode())
        except OSError:
            pass
    os._exit(0)
''')

PATCH_PYTEST = textwrap.dedent('''
    """Attack (b): an unfinished exercise that makes pytest report every check as passed."""
    import gc
    import pytest


    class GanClsLoss:
        def __init__(self, feature_weight=100.0, l1_weight=50.0):
            raise NotImplementedError("ex06: GanClsLoss.__init__ is not implemented yet")


    class AlwaysPass:
        @pytest.hookimpl(tryfirst=True)
        def pytest_pyfunc_call(self, pyfuncitem):
            return True  # "ran" the check without running it

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(self, item, call):
            report = (yield).get_result()
            report.outcome, report.longrepr = "passed", None


    config = next(o for o in gc.get_objects() if isinstance(o, pytest.Config))
    config.pluginmanager.register(AlwaysPass())
''')

SNEAKY_IMPORT = textwrap.dedent('''
    """Attack (c), spelled so that no syntax check can see it: the run-time block stops it."""
    import importlib
    globals().update(vars(importlib.import_module("sol" + "utions.ex04_generator")))
''')


@pytest.fixture(scope="module")
def attacks(tmp_path_factory) -> dict[str, grade.ExerciseScore]:
    """One graded folder holding three attacks (the other exercises are not handed in)."""
    files = {"ex01_captions.py": EXIT_EARLY, "ex04_generator.py": SNEAKY_IMPORT, "ex06_loss.py": PATCH_PYTEST}
    return {s.name: s for s in grade.run_checks(str(_hand_in(tmp_path_factory.mktemp("attacks"), files)))}


def test_exiting_early_with_forged_passes_scores_zero(attacks):
    assert sorted(attacks) == EXERCISES and sum(s.possible for s in attacks.values()) == TOTAL
    ex01 = attacks["ex01_captions"]
    assert ex01.earned == 0 and all("no verdict" in f and "exit status 0" in f for f in ex01.failures), ex01.failures
    (missing,) = attacks["ex02_encode"].failures
    assert attacks["ex02_encode"].earned == 0 and "ex02_encode.py is not in" in missing


def test_patching_pytest_reports_scores_zero(attacks):
    """pytest itself believes every check passed (no failure message comes back), yet nothing is signed."""
    ex06 = attacks["ex06_loss"]
    assert ex06.earned == 0 and len(ex06.failures) == 5 and all("no verdict" in f for f in ex06.failures), ex06.failures


def test_solutions_imported_at_run_time_are_blocked(attacks):
    ex04 = attacks["ex04_generator"]
    assert ex04.earned == 0 and all("does not allow importing 'solutions'" in f for f in ex04.failures), ex04.failures


RUN_TIME_ALIAS = textwrap.dedent('''
    """Attack (e): the lab's generator under a name built at run time, which no syntax check can read."""
    import importlib
    Generator = getattr(importlib.import_module("plug" + "ins.dcgan"), "DCGAN" + "Generator")
''')


def test_answers_reached_at_run_time_fail_their_checks(tmp_path):
    (score,) = grade.run_checks(str(_hand_in(tmp_path, {"ex04_generator.py": RUN_TIME_ALIAS})), "ex04")
    assert score.earned == 0, score.failures
    # DCGANGenerator is a CourseGenerator: the check names the first reference answer it finds in the class
    answers = ("`plugins.dcgan.DCGANGenerator`", "`plugins.course.CourseGenerator`")
    assert all(any(f"`Generator` is the lab's {a}" in f for a in answers) for f in score.failures), score.failures


def test_deleting_check_files_lowers_the_score_not_the_total(tmp_path, monkeypatch):
    """Attack (d): exercise 1 done right, plus a vandal that deletes every other check file it can find."""
    checks = tmp_path / "grading"
    shutil.copytree(grade.GRADING_DIR, checks)
    monkeypatch.setattr(grade, "GRADING_DIR", checks)
    vandal = _own_copy("lab/data/captions.py") + textwrap.dedent(f"""
        import sys
        for folder in (Path(sys.modules["conftest"].__file__).parent, Path({str(checks)!r})):
            for check in folder.glob("test_ex*.py"):
                if check.name != "test_ex01_captions.py":
                    check.unlink()
    """)
    folder = _hand_in(
        tmp_path / "student", {"ex01_captions.py": vandal, "ex06_loss.py": _own_copy("solutions/ex06_loss.py")}
    )
    during = {s.name: s.earned for s in grade.run_checks(str(folder))}
    assert (during["ex01_captions"], during["ex06_loss"]) == (11, 10), (
        "each exercise is graded on its own copy of the checks"
    )
    after = grade.run_checks(str(folder))
    assert [s.earned for s in after] == [11] + [0] * 7 and sum(s.possible for s in after) == TOTAL
    assert after[5].failures == [
        "all checks: check file missing: restore tests/grading/test_ex06_loss.py (git checkout tests/grading)"
    ]


def test_edited_check_files_are_refused(tmp_path, monkeypatch, capsys):
    checks = tmp_path / "grading"
    shutil.copytree(grade.GRADING_DIR, checks)
    with open(checks / "test_ex04_generator.py", "a") as f:
        f.write("\ntest_output_is_tanh_range = lambda: None\n")
    monkeypatch.setattr(grade, "GRADING_DIR", checks)
    assert cli_main(["grade", "--target", "solutions"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and f"{checks / 'test_ex04_generator.py'} differs from lab/course/grade_manifest.py" in err
    )


def test_checks_that_cannot_be_collected_are_one_clean_error(tmp_path, monkeypatch, capsys):
    checks = tmp_path / "grading"
    shutil.copytree(grade.GRADING_DIR, checks)
    broken = checks / "test_ex06_loss.py"
    broken.write_text("raise RuntimeError('broken check file')\n")
    monkeypatch.setattr(grade, "GRADING_DIR", checks)
    monkeypatch.setitem(grade.SHA256, broken.name, hashlib.sha256(broken.read_bytes()).hexdigest())
    assert cli_main(["grade", "--target", "solutions", "--only", "ex06"]) == 2
    err = capsys.readouterr().err
    error = err.splitlines()[-1]  # after the progress line that grading started
    assert err.count("error:") == 1 and "could not run" in error and "broken check file" in error


SLOW_WEIGHTS = textwrap.dedent("""
    _Right = GanClsLoss


    class GanClsLoss(_Right):  # right, except that a feature weight of 2 sends generator_loss into an endless loop
        def generator_loss(self, *args, **kwargs):
            while self.feature_weight == 2.0:
                pass
            return super().generator_loss(*args, **kwargs)
""")


def test_a_hanging_check_fails_alone(tmp_path):
    """An endless loop in one check is stopped by the per-check timeout; the other checks still score."""
    (score,) = grade.run_checks(
        str(_hand_in(tmp_path, {"ex06_loss.py": _own_copy("solutions/ex06_loss.py") + SLOW_WEIGHTS})), "ex06", timeout=3
    )
    assert score.possible - score.earned == 1
    (failure,) = score.failures
    assert failure.startswith("generator_loss_weights: ") and "Timeout" in failure


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a kill takes effect within a moment)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


def test_a_child_that_defeats_the_check_timeout_is_killed_with_its_process_group(tmp_path, monkeypatch):
    pid_file = tmp_path / "grandchild.pid"
    stubborn = textwrap.dedent(f"""
        import signal, subprocess
        from pathlib import Path
        grandchild = subprocess.Popen(["sleep", "600"])
        Path({str(pid_file)!r}).write_text(str(grandchild.pid))
        signal.signal(signal.SIGALRM, signal.SIG_IGN)  # pytest-timeout's alarm now does nothing
        while True:
            pass
    """)
    monkeypatch.setattr(grade, "STARTUP_S", 10)
    start = time.monotonic()
    (score,) = grade.run_checks(str(_hand_in(tmp_path / "student", {"ex06_loss.py": stubborn})), "ex06", timeout=1)
    assert time.monotonic() - start < 30
    assert score.earned == 0 and all("ran past its 15 s and was stopped" in f for f in score.failures), score.failures
    assert not _running(int(pid_file.read_text())), "the grandchild outlived the grading run"


def test_sandbox_cuts_the_network_and_limits_resources(tmp_path):
    inside = tmp_path / "inside.json"
    probe = _own_copy("lab/data/captions.py") + textwrap.dedent(f"""
        import json, os, resource, socket
        import lab
        limits = {{name: resource.getrlimit(getattr(resource, name)) for name in ("RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CPU")}}
        seen = {{"interfaces": [name for _, name in socket.if_nameindex()], "limits": limits, "lab": lab.__file__, "home": os.environ["HOME"]}}
        with open({str(inside)!r}, "w") as f:
            json.dump(seen, f)
    """)
    (score,) = grade.run_checks(str(_hand_in(tmp_path / "student", {"ex01_captions.py": probe})), "ex01", sandbox=True)
    assert score.earned == score.possible == 11
    seen = json.loads(inside.read_text())
    assert (
        seen["limits"]["RLIMIT_AS"] == [grade_sandbox.ADDRESS_SPACE] * 2
        and seen["limits"]["RLIMIT_FSIZE"] == [grade_sandbox.FILE_SIZE] * 2
    )
    assert 0 < seen["limits"]["RLIMIT_CPU"][0] == seen["limits"]["RLIMIT_CPU"][1]
    assert not Path(seen["lab"]).is_relative_to(grade.ROOT), "the sandbox imports a copy of the lab"
    assert Path(seen["home"]).parent == Path(seen["lab"]).parent.parent
    if grade_sandbox.isolation()[0]:
        assert seen["interfaces"] == ["lo"]


def test_grading_the_stubs_scores_zero_with_clean_messages():
    scores = grade.run_checks("exercises")
    assert [s.name for s in scores] == EXERCISES
    for score in scores:
        assert score.possible > 0 and score.earned == 0, score.name
        prefix = f"NotImplementedError: {score.name.split('_')[0]}: "
        assert all(f.split(": ", 1)[1].startswith(prefix) for f in score.failures), score.failures


def test_grading_the_solutions_scores_full_marks(capsys):
    assert cli_main(["grade", "--target", "solutions"]) == 0, capsys.readouterr()
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.split()[0] == "total" and last.endswith("100%")


def test_lab_train_with_student_parts(tmp_path, synthetic_root, capsys):
    """`lab train --generator=exercises...` on a stub is one clean error; the solutions train a real epoch."""
    common = [
        f"--data_dir={synthetic_root}",
        f"--cache_dir={tmp_path}/cache",
        "--encoder=minilm",
        "--split=all",
        "--max_images=8",
    ]
    common += [
        "--epochs=1",
        "--batch_size=4",
        "--generator.width=8",
        "--discriminator.width=8",
        "--threads=1",
        "--quiet",
    ]
    parts = [
        "--generator={}.ex04_generator:Generator",
        "--discriminator={}.ex05_discriminator:Discriminator",
        "--loss={}.ex06_loss:GanClsLoss",
    ]

    assert cli_main(["train", *[p.format("exercises") for p in parts], *common, f"--out_dir={tmp_path}/stub"]) == 2
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1] == "lab train: error: unfinished exercise: ex04: Generator.__init__ is not implemented yet"
    )
    assert "Traceback" not in err

    assert cli_main(["train", *[p.format("solutions") for p in parts], *common, f"--out_dir={tmp_path}/run"]) == 0
    (epoch,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epoch["epoch"] == 1 and epoch["d_loss"] > 0


KNOWN_MODULES = ("lab", "plugins", "torch", "transformers", "sentence_transformers")


def _resolve(name: str, namespace: dict) -> bool:
    """Whether dotted `name` exists: from the stub's own names, or from an importable module path."""
    parts = name.split(".")
    if parts[0] in namespace:
        obj, rest = namespace[parts[0]], parts[1:]
    else:
        for cut in range(len(parts), 0, -1):
            try:
                obj, rest = importlib.import_module(".".join(parts[:cut])), parts[cut:]
                break
            except ImportError:
                continue
        else:
            return False
    for part in rest:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


@pytest.mark.parametrize("name", EXERCISES)
def test_every_name_a_stub_tells_students_to_use_exists(name):
    """Backticked module paths (`lab.data.weights.mpnet_dir()`) and calls (`clean_caption(text)`, `get_embedding_dimension()`)
    in a stub's docstring name real things: imported by the stub, importable, or a method of something it imports."""
    import builtins

    stub = importlib.import_module(f"exercises.{name}")
    namespace = vars(stub)
    checked = 0
    for quoted in re.findall(r"`([^`]+)`", stub.__doc__):
        match = re.match(r"[A-Za-z_][\w.]*", quoted)
        if not match or match.group(0).endswith("."):
            continue
        dotted = match.group(0)
        head = dotted.split(".")[0]
        is_call = quoted[len(dotted) :].startswith("(")
        if head in namespace or head in KNOWN_MODULES:
            assert _resolve(dotted, namespace), f"{name}: `{quoted}` does not exist"
        elif is_call and "." not in dotted:
            owners = [builtins, *(v for v in namespace.values() if inspect.isclass(v) or inspect.ismodule(v))]
            assert any(hasattr(owner, dotted) for owner in owners), (
                f"{name}: `{quoted}` is neither imported nor a method of an import"
            )
        else:
            continue
        checked += 1
    assert checked, f"{name}: its docstring names nothing to check"


ESCAPE = textwrap.dedent('''
    """Attack (f): fork, setsid, fork again, and rewrite the report once `lab grade` has written it."""
    import json, os, time
    from pathlib import Path

    if os.fork() == 0:
        os.setsid()  # out of the grading child's process group and session
        if os.fork() == 0:
            Path(PID_FILE).write_text(str(os.getpid()))
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if json.loads(Path(REPORT).read_text())["score"] != 11.0:
                        Path(REPORT).write_text(json.dumps({"score": 11.0, "tests": []}))
                        Path(PID_FILE).write_text("forged")
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.005)
        os._exit(0)
''')


def test_a_process_that_escapes_the_group_cannot_touch_the_report(tmp_path, capsys):
    """The report is written only after every process the graded code started is dead, however it forked."""
    out, pid_file = tmp_path / "results.json", tmp_path / "escaped.pid"
    source = f"PID_FILE, REPORT = {str(pid_file)!r}, {str(out)!r}\n" + ESCAPE
    folder = _hand_in(tmp_path / "student", {"ex01_captions.py": source})
    assert (
        cli_main(["grade", "--target", str(folder), "--only", "ex01", "--format", "gradescope", "--out", str(out)]) == 1
    )
    assert "total                0/11" in capsys.readouterr().out
    escaped = pid_file.read_text()
    assert escaped.isdigit(), "the attack rewrote the report"
    time.sleep(1.0)  # the escaped process polled every 5 ms: had it lived, it would have struck by now
    assert json.loads(out.read_text())["score"] == 0.0 and pid_file.read_text() == escaped
    assert not _running(int(escaped)), "the escaped process outlived grading"


def test_an_output_flood_keeps_only_the_tail_in_memory(tmp_path):
    """256 MB on stdout: the grader reads it as it comes and keeps 20 kB (it used to hold all of it)."""
    import sys
    import tracemalloc

    flood = "import os\nfor _ in range(256): os.write(1, b'x' * (1 << 20))\nos.write(1, b'THE END')\n"
    tracemalloc.start()
    try:
        run = grade.run_child([sys.executable, "-c", flood], {}, tmp_path, secrets.token_bytes(32), 120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert run.returncode == 0 and run.output.endswith("THE END") and len(run.output) <= grade.OUTPUT_TAIL
    assert peak < 8 << 20, f"the grader held {peak / 2**20:.0f} MB while reading a 256 MB flood"


def test_only_can_be_repeated():
    args = build_parser().parse_args(["grade", "--only", "ex06", "--only", "ex04,ex01"])
    assert grade.exercises(args.only) == ["ex01_captions", "ex04_generator", "ex06_loss"]


NO_BATCHNORM = textwrap.dedent('''
    """A student's ex04 from the docstring, BatchNorm2d forgotten."""
    import torch
    from torch import nn

    from lab.interfaces import Generator as GeneratorInterface
    from plugins.dcgan import channel_plan, init_weights, text_projection


    class Generator(GeneratorInterface):
        def __init__(self, text_dim=768, noise_dim=100, text_proj_dim=256, width=64, image_size=64):
            super().__init__()
            self.text_dim, self.noise_dim, self.image_size = text_dim, noise_dim, image_size
            self.project = text_projection(text_dim, text_proj_dim)
            channels = channel_plan(width, image_size)
            layers = [nn.ConvTranspose2d(noise_dim + text_proj_dim, channels[0], 4, 1, 0, bias=False), nn.ReLU()]
            for a, b in zip(channels, channels[1:]):
                layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.ReLU()]
            self.net = nn.Sequential(*layers, nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1, bias=False), nn.Tanh())
            self.apply(init_weights)

        def forward(self, noise, text_embedding):
            return self.net(torch.cat([noise, self.project(text_embedding)], 1)[:, :, None, None])
''')

SWAPPED_LABELS = textwrap.dedent('''
    """A student's ex06 that calls wrong images real."""
    import torch
    import torch.nn.functional as F

    from lab.interfaces import LossOutput, LossRecipe


    class GanClsLoss(LossRecipe):
        def __init__(self, feature_weight=100.0, l1_weight=50.0):
            self.feature_weight, self.l1_weight = feature_weight, l1_weight

        def discriminator_loss(self, real_logits, wrong_logits, fake_logits):
            bce = F.binary_cross_entropy_with_logits
            terms = {
                "d_real": bce(real_logits, torch.ones_like(real_logits)),
                "d_wrong": bce(wrong_logits, torch.ones_like(wrong_logits)),
                "d_fake": bce(fake_logits, torch.zeros_like(fake_logits)),
            }
            return LossOutput(sum(terms.values()), {k: v.item() for k, v in terms.items()})

        def generator_loss(self, fake_logits, fake_features, real_features, fake_images, real_images):
            terms = {
                "g_adv": F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)),
                "g_feature": F.mse_loss(fake_features.mean(0), real_features.detach().mean(0)),
                "g_l1": F.l1_loss(fake_images, real_images),
            }
            total = terms["g_adv"] + self.feature_weight * terms["g_feature"] + self.l1_weight * terms["g_l1"]
            return LossOutput(total, {k: v.item() for k, v in terms.items()})
''')


def test_the_grader_leads_a_student_to_the_fix(tmp_path, monkeypatch, capsys):
    """Deliberate mistakes, graded as a student runs it: each failed check listed with expected vs got and a hint,
    a syntax error at the student's own path, a line per exercise as it finishes, the tracebacks command."""
    monkeypatch.chdir(tmp_path)
    _hand_in(
        tmp_path / "exercises",
        {
            "ex01_captions.py": "def load_captions(root):\n    return root)\n",
            "ex04_generator.py": NO_BATCHNORM,
            "ex06_loss.py": SWAPPED_LABELS,
        },
    )
    assert cli_main(["grade", "--only", "ex01", "--only", "ex04", "--only", "ex06", "-v"]) == 1
    out, err = capsys.readouterr()
    assert "  - all 7 checks: SyntaxError: unmatched ')' at exercises/ex01_captions.py:2" in out
    assert "      return root)" in out, "-v shows the line"
    ex04 = out[out.index("ex04_generator (") :]
    first = ex04.splitlines()[1]
    assert first.startswith("  - architecture_size: expected ") and "expected 4 BatchNorm2d, found 0" in first, first
    assert "d_wrong: expected 1.4989, got 0.4989: that is BCE with label 1" in out
    assert out.strip().splitlines()[-1].startswith("total ")
    finished = [line.split()[1] for line in err.splitlines() if line.startswith("  [")]
    assert sorted(finished) == ["ex01_captions", "ex04_generator", "ex06_loss"]

    command = err.split("full tracebacks (from any folder): ")[1].strip()
    assert command.startswith(f"LAB_GRADE_TARGET={tmp_path / 'exercises'} ")
    (tmp_path / "elsewhere").mkdir()
    variable, *argv = shlex.split(command)
    name, value = variable.split("=", 1)
    only_ex06 = [a for a in argv if not a.endswith(("ex01_captions.py", "ex04_generator.py"))]
    env = {**os.environ, name: value, "PYTHONPATH": ""}
    done = subprocess.run(only_ex06, cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True, timeout=300)
    assert "2 failed, 3 passed" in done.stdout and "d_wrong: expected 1.4989, got 0.4989" in done.stdout, done.stdout[
        -3000:
    ]
