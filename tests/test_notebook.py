"""The tutorial notebook (notebooks/tutorial.ipynb, the one Colab opens) runs top to bottom on a tiny synthetic set.

Its jupytext source notebooks/tutorial.py holds the same cells (tests/test_docs.py checks the pair)."""

import os

import nbformat
import torch
from nbclient import NotebookClient

from lab.course.quiz import QUESTIONS, head_channels
from tests.helpers import ROOT


def test_tutorial_notebook_runs_and_shows_every_step(tmp_path, monkeypatch, synthetic_root):
    notebook = nbformat.read(ROOT / "notebooks" / "tutorial.ipynb", as_version=4)
    answers = " ".join(f"{number}{q.answer}" for number, q in enumerate(QUESTIONS, 1))
    for key, value in {
        "TUTORIAL_DATA": str(synthetic_root),
        "TUTORIAL_STEPS": "3",
        "TUTORIAL_CACHE": str(tmp_path / "cache"),
        "TUTORIAL_ANSWERS": answers,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),  # the kernel imports this checkout's lab
        "OMP_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs)
    assert f"running on {'cuda' if torch.cuda.is_available() else 'cpu'}" in text, "a GPU is used when there is one"
    assert "24 captioned images" in text and "encoder minilm: 384 numbers per caption" in text
    assert "images (4, 3, 64, 64)" in text and "step   3: D" in text
    assert "Score: 10/10" in text
    pictures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(pictures) == 3, "the wrong-image pairs, the generated grid beside the main job's, the L1 lesson"
    assert "the main job's samples:" not in text, "in a checkout the main job's picture is shown, not linked"
    assert "the course's D (quiz question 7): its last layer reads 512 image + 64 text = 576 channels" in text
    image, text_channels, total = head_channels()  # the lab's default D, read from the model
    assert f"the lab's default D: its last layer reads {image} image + {text_channels} text = {total} channels" in text


def test_tutorial_points_to_each_exercise_and_agrees_with_the_quiz_on_question_7():
    notebook = nbformat.read(ROOT / "notebooks" / "tutorial.ipynb", as_version=4)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    for number in range(1, 9):
        assert f"`exercises/ex0{number}_" in markdown and f"`lab grade --only ex0{number}`" in markdown, number
    mentions = [cell.source for cell in notebook.cells if cell.cell_type == "markdown" and "question 7" in cell.source]
    assert mentions and all("576" in source for source in mentions), (
        "the text gives the course's 576 (the code derives it)"
    )
    assert "matching image" in "".join(c.source for c in notebook.cells) and "wrong image (another flower)" in "".join(
        c.source for c in notebook.cells
    ), "the wrong-image grid labels which image is which"
