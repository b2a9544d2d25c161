"""One process per run directory.

Two `lab train` runs writing into the same `out_dir` would both succeed while
interleaving their metrics and overwriting each other's checkpoints. `run_lock`
makes the second one stop at once: the first creates `RUN/.lock` holding its
PID and host name (created with O_EXCL, so exactly one process can win), and
removes it when it ends, also on an error or Ctrl-C. A lock left behind by a
process that no longer runs (killed, machine crashed) is taken over with a
one-line note; a lock from another host cannot be checked and is refused.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError
from lab.files import os_problem

LOCK = ".lock"


def _owner(lock: Path) -> tuple[int, str] | None:
    """(pid, host) written in a lock file; None when it is unreadable or gone."""
    try:
        pid, host = lock.read_text().split("\n")[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _acquire(lock: Path) -> bool:
    """Create the lock file with our PID; False when it already exists."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n{socket.gethostname()}\n")
    except OSError:  # a full disk: no lock left behind that names no process
        lock.unlink(missing_ok=True)
        raise
    return True


def _take_over(lock: Path, stale: tuple[int, str]) -> None:
    """Remove a dead process's lock, but only if it is still that lock (another process may have taken it over first)."""
    aside = lock.with_name(f"{LOCK}.stale.{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:  # someone else removed it already
        return
    if _owner(aside) == stale:
        aside.unlink()
        print(f"note: taking over {lock} left by process {stale[0]}, which is no longer running", file=sys.stderr)
    else:  # it was a fresh lock by now: put it back, and let the retry report it
        os.rename(aside, lock)


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir/.lock` for the duration of the block; a LabError naming the holder when another process has it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot create the run directory {run_dir}: {os_problem(e)}") from None
    lock = run_dir / LOCK
    for _ in range(3):  # a lost race for a stale lock is retried
        try:
            if _acquire(lock):
                break
        except OSError as e:  # a read-only folder or disk, no permission, a full disk
            raise LabError(f"cannot write in the run directory {run_dir}: {os_problem(e)}") from None
        owner = _owner(lock)
        here = socket.gethostname()
        if owner is not None and (owner[1] != here or _alive(owner[0])):
            where = "" if owner[1] == here else f" on {owner[1]}"
            raise LabError(
                f"{run_dir} is in use by process {owner[0]}{where} (another `lab train`?); wait for it, choose another out_dir, or delete {lock} if it is not running"
            )
        if owner is not None:
            _take_over(lock, owner)
    else:
        raise LabError(
            f"cannot lock {run_dir}: {lock} exists but holds no process id; delete it if no run is using this directory"
        )
    try:
        yield lock
    finally:
        if _owner(lock) == (os.getpid(), socket.gethostname()):
            lock.unlink()
