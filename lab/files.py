"""Writing files so that an interruption never leaves a half-written one, and reading caches back.

Every file the lab writes for later (checkpoints, caches, run config, plots)
goes through `atomic_write`: write to a temp name beside the target, then
rename, which is atomic on one file system. A failed write (disk full, no
permission) removes its temp file, leaves the old target untouched and ends as
one `LabError` naming the target.

Caches are only shortcuts, so `load_cache` treats an unreadable or foreign
cache file as missing: it says so in one line, deletes it, and the caller
rebuilds it. A damaged cache never gives a traceback or a silently wrong result.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import LabError

# What to do about the OSErrors a user can fix, by errno: a full disk, a folder without permission, a read-only mount.
_REMEDIES = {
    errno.ENOSPC: "free some space on that disk or choose a folder on another one",
    errno.EDQUOT: "free some space (the disk quota is used up) or choose a folder on another disk",
    errno.EACCES: "check its permissions (ls -l; chmod/chown) or choose another folder",
    errno.EPERM: "check its permissions (ls -l; chmod/chown) or choose another folder",
    errno.EROFS: "choose a folder on a writable disk",
}


def remedy(error: OSError) -> str:
    """What to do about an OSError a user can fix (full disk, permissions, read-only), after "; "; else nothing."""
    fix = _REMEDIES.get(error.errno or 0)
    return f"; {fix}" if fix else ""


def os_problem(error: OSError) -> str:
    """The system's reason and what to do, e.g. "Permission denied; check its permissions ..."."""
    return (error.strerror or (str(error).splitlines() or [type(error).__name__])[0]) + remedy(error)


def check_folder(folder: Path, what: str, force: bool, ignore: tuple[str, ...] = ()) -> None:
    """Refuse an output folder that is a file, or that already holds anything (names in `ignore` aside)
    unless `force`: nothing on disk is overwritten without being asked to. `what` names the option."""
    named = f"{what} {folder}".strip()
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{named} is a file; give a folder")
    try:
        held = sorted(p.name for p in folder.iterdir() if p.name not in ignore) if folder.is_dir() else []
    except OSError as e:
        raise LabError(f"cannot look into {named}: {os_problem(e)}") from None
    if held and not force:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise LabError(
            f"{named} is not empty; its files could be overwritten ({shown}): choose an empty or new folder, or pass --force"
        )


def _temp_name(path: Path, pid: int) -> Path:
    """Where `atomic_write` writes first: hidden, beside the target, with the writer's PID and the suffix kept."""
    return path.with_name(f".{path.stem}.{pid}.tmp{path.suffix}")


TEMP_PATTERN = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.[^.]*)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_orphan_temps(folder: Path) -> list[Path]:
    """Delete the temp files that writers killed mid-write (kill -9, power loss) left in `folder`; a live
    writer's are kept. Returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = TEMP_PATTERN.match(path.name)
        if match and path.is_file() and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temp_path)`, then rename onto `path`: an interrupted write never leaves a broken file.

    The temp name keeps the suffix, for writers that pick the format from it."""
    tmp = _temp_name(path, os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:  # also Ctrl-C: never leave the temp file behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise LabError(
                f"cannot write {path}: {e.strerror or e} (any previous version of it is unchanged){remedy(e)}"
            ) from None
        raise


def atomic_save(obj: object, path: Path) -> None:
    """torch.save, atomically and durably. Serialised in memory first, then written with plain Python I/O:
    a full disk is then a plain OSError (torch's own writer turns it into an opaque RuntimeError), and the
    bytes reach the disk (fsync) before the rename makes them the file."""

    import torch  # here, not at the top: commands that write no tensors (`lab data synthetic`) need not load it

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with tmp.open("wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def write_json(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2)))


def _reason(error: Exception) -> str:
    """A short, one-line account of why a file could not be read."""
    first = (str(error).strip().splitlines() or [""])[0][:120]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def read_torch(path: Path, what: str, hint: str = "") -> Any:
    """torch.load (weights only, onto the CPU) with a one-line `LabError` naming `path` when it is damaged."""
    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # truncated, empty, garbage or foreign files raise many types
        raise LabError(f"{path} is not a readable {what} ({_reason(e)}){hint}") from None


def load_cache(path: Path, valid: Callable[[Any], bool] = lambda blob: True) -> Any:
    """The object cached at `path`, or None when there is none or it cannot be used (then it is deleted).

    `valid(blob)` checks the content fits what the caller expects; it may also raise."""
    if not path.exists():
        return None
    import torch

    try:
        blob = torch.load(path, weights_only=True, map_location="cpu")
        reason = "" if valid(blob) else "unexpected content"
    except Exception as e:  # truncated, empty, garbage or foreign files raise many types
        reason = _reason(e)
    if not reason:
        return blob
    print(f"note: ignoring cache file {path} ({reason}); rebuilding it", file=sys.stderr)
    try:
        path.unlink()
    except OSError:  # a folder or an unwritable file: the rebuilt cache's write will say so
        pass
    return None
