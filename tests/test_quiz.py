"""The quiz: answer key from the course, code-dependent answers derived from the lab's real modules."""

from __future__ import annotations

import json

import pytest

from lab.cli import main as cli_main
from lab.config import ExperimentConfig, apply
from lab.course import quiz
from lab.data.weights import mpnet_dir
from lab.errors import LabError

KEY = "1a 2a 3a 4a 5d 6c 7c 8d 9a 10b"  # the course material's answer key


def _option(number: int, lang: str = "en") -> str:
    question = quiz.QUESTIONS[number - 1]
    return question.text(lang).options[quiz.LETTERS.index(question.answer)]


def test_questions_are_complete_in_both_languages():
    assert len(quiz.QUESTIONS) == 10
    for question in quiz.QUESTIONS:
        assert question.answer in quiz.LETTERS
        for lang in quiz.LANGS:
            text = question.text(lang)
            assert text.question and text.reason and len(text.options) == 4 and len(set(text.options)) == 4
        assert question.vi != question.en


def test_the_key_scores_full_marks():
    right, report = quiz.check(quiz.parse_answers(KEY), "en")
    assert right == 10 and report.splitlines()[-1] == "Score: 10/10"


def test_mpnet_embedding_size_answers_match_the_installed_weights():
    config = mpnet_dir() / "config.json"
    if not config.is_file():
        pytest.skip("MPNet weights not installed (`lab weights mpnet`)")
    from plugins.dcgan import DCGANGenerator

    dim = json.loads(config.read_text())["hidden_size"]
    assert _option(6) == str(dim)
    assert _option(10) == str(DCGANGenerator(text_dim=dim, width=8).project[0].in_features)


def test_head_channels_come_from_the_discriminator():
    """Question 7 as the course asks it: the course's D (width 64, text to 64) gives 576; the seed tutorial's
    own `Discriminator(3, 128, 768, 256)` and the lab's default D are worked out from built networks."""
    for lang in quiz.LANGS:
        assert quiz.QUESTIONS[6].text(lang).options == ("512", "64", "576", "1024")
    assert quiz.head_channels(
        apply(ExperimentConfig(), {"discriminator.width": 64, "discriminator.text_proj_dim": 64})
    ) == (512, 64, 576)
    assert _option(7) == "576"
    assert quiz.head_channels(
        apply(ExperimentConfig(), {"discriminator.width": 16, "discriminator.text_proj_dim": 32, "image_size": 128})
    ) == (128, 32, 160)
    seed = quiz.head_channels(apply(ExperimentConfig(), quiz.SEED_DISCRIMINATOR))
    assert seed == (1024, 256, 1280) and str(seed[2]) not in quiz.QUESTIONS[6].en.options
    total = 64 * 8 + 256  # the dcgan discriminator's default width and text projection
    for lang in quiz.LANGS:
        assert f"= {total} " in quiz.QUESTIONS[6].explain(lang) and "1024 + 256 = 1280" in quiz.QUESTIONS[6].explain(
            lang
        )


def test_exercise_5_agrees_with_question_7():
    """ex05's docstring names the same course network as the quiz, and the channel count at its own defaults."""
    import inspect

    from exercises import ex05_discriminator

    doc = " ".join(ex05_discriminator.__doc__.split())
    assert "quiz question 7" in doc and "width is 64" in doc and "projected to 64" in doc
    defaults = inspect.signature(ex05_discriminator.Discriminator).parameters
    width, text = defaults["width"].default, defaults["text_proj_dim"].default
    assert f"{width * 8} + {text} = {width * 8 + text} input channels" in doc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1a 2c", {1: "a", 2: "c"}),
        ("1.a, 2) B; 10:d", {1: "a", 2: "b", 10: "d"}),
        ("  3 c\n4=d\n", {3: "c", 4: "d"}),
        ("1a2b", {1: "a", 2: "b"}),
    ],
)
def test_parse_answers(text, expected):
    assert quiz.parse_answers(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no answers"),
        ("  , ", "no answers"),
        ("1e", "not an option"),
        ("11a", "no question 11"),
        ("1a 1b", "twice"),
        ("a b c", "cannot read 'a'"),
        ("1a 2", "cannot read '2'"),
    ],
)
def test_malformed_answers_say_what_is_wrong(text, message):
    with pytest.raises(LabError, match=message):
        quiz.parse_answers(text)


def test_missing_and_wrong_answers_are_marked():
    right, report = quiz.check({1: "b", 2: "a"}, "vi")
    assert right == 1
    lines = report.splitlines()
    assert lines[0] == "✗  1. b  Sai, đáp án là a"
    assert lines[2].startswith("✓  2. a")
    assert "chưa trả lời" in lines[4] and lines[-1] == "Điểm: 1/10"


def test_cli_check_string_and_file(tmp_path, capsys):
    assert cli_main(["quiz", "check", KEY]) == 0
    sheet = tmp_path / "answers.txt"
    sheet.write_text(KEY.replace("10b", "10c").replace(" ", "\n"))
    assert cli_main(["quiz", "check", str(sheet), "--lang", "en"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "Score: 9/10"


@pytest.mark.parametrize("answers", ["1z", "missing/answers.txt"])
def test_cli_malformed_is_one_line_exit_2(answers, capsys):
    assert cli_main(["quiz", "check", answers]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab quiz: error: ") and err.count("\n") == 1


def test_interactive_reprompts_and_stops_on_q():
    replies = iter(["A", "maybe", "b", "q"])
    written: list[str] = []
    right = quiz.interactive("en", read=lambda prompt: next(replies), write=written.append)
    assert right == 1
    assert written.count(quiz.UI["en"]["invalid"]) == 1
    assert written[-1].strip() == "Score: 1/2"


def test_interactive_end_of_input_stops():
    def closed(prompt: str) -> str:
        raise EOFError

    written: list[str] = []
    assert quiz.interactive("vi", read=closed, write=written.append) == 0
    assert written[-1].strip() == "Điểm: 0/0"


def test_check_never_hands_out_the_answer_of_a_question_left_out():
    right, report = quiz.check({1: "b"}, "en")
    lines = report.splitlines()
    assert right == 0 and lines[-1] == "Score: 0/10"
    assert lines[0].startswith("✗  1. b  Wrong, the answer is ")  # answered: the verdict and its reason
    unanswered = [line for line in lines if line.startswith("✗ ") and "(no answer)" in line]
    assert len(unanswered) == 9 and all(line.endswith(". -  (no answer)") for line in unanswered)
    assert len(lines) == 1 + 1 + 9 + 1  # no explanation under a question left out
