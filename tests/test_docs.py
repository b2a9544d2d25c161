"""The README, the guides in docs/, the docs site and the notebook pair stay true to the files they name.

A broken link, a missing page, a README that grows back into a log, or a notebook whose two files
(jupytext source and .ipynb) drift apart fails here, not in front of a reader."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from tests.helpers import ROOT

README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs").glob("*.md"))
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"
SOURCE = ROOT / "notebooks" / "tutorial.py"
LINK = re.compile(r"\]\(([^)\s]+)")  # the target of [text](target), ![alt](target) and [![alt](image)](target)


def links(markdown: str) -> list[str]:
    """Link and image targets outside code blocks and code spans (a command in backticks is no link)."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return LINK.findall(prose)


def relative(targets: list[str]) -> list[str]:
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_readme_is_short():
    assert README.stat().st_size <= 15_000, f"README.md is {README.stat().st_size} bytes; move detail into docs/"


@pytest.mark.parametrize("page", [README, *GUIDES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_resolves(page):
    targets = relative(links(page.read_text(encoding="utf-8")))
    missing = [t for t in targets if not (page.parent / t).is_file()]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"


def test_link_check_sees_links_and_skips_code():
    found = relative(
        links(
            "[a](docs/x.md) ![b](pic.png) `[c](no.md)` [d](https://e.org) [f](#g) [![i](j.svg)](k.md#l)\n```\n[h](no2.md)\n```"
        )
    )
    assert found == ["docs/x.md", "pic.png", "j.svg", "k.md"]


def test_readme_links_every_guide_and_the_site_lists_every_page():
    readme = set(relative(links(README.read_text(encoding="utf-8"))))
    guides = {p.name for p in GUIDES} - {"index.md"}
    assert {f"docs/{name}" for name in guides} <= readme
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert {page for entry in nav for page in entry.values()} == guides | {"index.md"}


def build_site(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason='mkdocs-material is not installed (pip install -e ".[docs]"; .ci/run installs it)',
)
def test_docs_site_builds_strict_and_a_broken_link_fails_it(tmp_path):
    built = build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    assert all((tmp_path / "site" / page.stem / "index.html").is_file() for page in GUIDES if page.name != "index.md")

    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "course.md", "a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    broken = build_site(copy / "mkdocs.yml", tmp_path / "site2")
    assert broken.returncode != 0 and "no-such-page.md" in broken.stdout + broken.stderr


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_notebook_is_the_jupytext_source_with_outputs_stripped():
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert cells(committed) == cells(jupytext.read(SOURCE)), "run `jupytext --sync notebooks/tutorial.py`"
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        "strip the outputs before committing"
    )


def test_colab_badges_open_the_notebook_at_the_repository_of_its_install_cell():
    install = jupytext.read(SOURCE).cells[1].source
    assert '"google.colab" in sys.modules' in install and "PLACEHOLDER" in install
    repo = re.search(r'REPO = "https://github.com/([^"]+)"', install).group(1)
    badge = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/tutorial.ipynb"
    for page in (README, ROOT / "docs" / "course.md"):
        assert badge in links(page.read_text(encoding="utf-8")), f"{page.name} has no Colab badge for {repo}"


def test_colab_install_cell_installs_only_in_colab(monkeypatch):
    install = jupytext.read(SOURCE).cells[1].source
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: ran.append(command))
    exec(install, {})
    assert ran == [], "outside Colab the install cell does nothing"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    namespace = {}
    exec(install, namespace)
    assert namespace["IN_COLAB"] and any(f"t2i-lab @ git+{namespace['REPO']}" in command for command in ran)
