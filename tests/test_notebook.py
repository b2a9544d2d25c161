"""The tutorial notebook (notebooks/tutorial.ipynb, the one Colab opens) runs top to bottom on a tiny synthetic set.

Its jupytext source notebooks/tutorial.py holds the same cells (tests/test_docs.py checks the pair)."""

import os

import nbformat
import torch
from nbclient import NotebookClient

from lab.course.quiz import QUESTIONS
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
    assert len(pictures) == 2, "the wrong-image pairs and the generated grid are shown"
