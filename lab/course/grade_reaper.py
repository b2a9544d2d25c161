"""`lab grade` outlives everything the graded code started: a child subreaper that kills its strays.

A grading child runs in its own session and is killed with its process group,
but graded code can leave both: fork, `os.setsid()`, fork again, and the
grandchild belongs to no group the grader knows. Orphans normally go to init
and live on, free to rewrite a report after `lab grade` wrote it.

On Linux the grader marks itself a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`):
an orphan anywhere below it is re-parented to it instead of to init, so every
process the graded code ever started stays a descendant of the grader, found by
walking parent links in `/proc`. `Reaper.sweep()` kills every descendant that
is not under a process the grader is still waiting on (a running grading child,
or a child the calling program had before grading began), reaps it, and
repeats until none is left: a process that forks while it is being killed is
caught on the next pass, since a killed process forks no more.

Signals go through a pidfd opened before the process's ancestry is
re-checked, so a recycled process id can never redirect a kill to a stranger.
Elsewhere (no prctl, no /proc) the grader falls back to process-group kills
and says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
SWEEP_S = 10.0  # a sweep that cannot finish in this long faces something it cannot kill; it says so


def _parents() -> dict[int, int]:
    """Every visible process -> its parent, from /proc (processes that end while we look are skipped)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces and parentheses
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _descendants(root: int, parents: dict[int, int], skip: set[int]) -> set[int]:
    """Processes below `root`, leaving out the subtrees of `skip`."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [pid for pid in children.get(root, []) if pid not in skip]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += [c for c in children.get(pid, []) if c not in skip]
    return found


def _prctl(option: int, value: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if option == PR_GET_CHILD_SUBREAPER:
        out = ctypes.c_int(0)
        return -1 if libc.prctl(option, ctypes.byref(out), 0, 0, 0) else out.value
    return libc.prctl(option, value, 0, 0, 0)


class Reaper:
    """Adopts the graded code's orphans (as child subreaper) and kills every stray descendant on `sweep()`."""

    def __init__(self) -> None:
        self.active = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()
        self._lock = threading.Lock()
        self._waited: set[int] = set()  # running grading children: their subtrees are still theirs
        self._kept: set[int] = set()  # the caller's own children from before grading: never touched
        self._previous = 0

    def __enter__(self) -> Reaper:
        if self.active:
            self._previous = _prctl(PR_GET_CHILD_SUBREAPER)
            self.active = self._previous >= 0 and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
        if self.active:
            parents = _parents()
            self._kept = {pid for pid, ppid in parents.items() if ppid == os.getpid()}
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.sweep()
        finally:
            if self.active and self._previous == 0:
                _prctl(PR_SET_CHILD_SUBREAPER, 0)

    @contextmanager
    def starting(self):
        """Hold while starting a grading child, then `wait_on` it: a sweep never sees it unregistered."""
        with self._lock:
            yield

    def wait_on(self, pid: int) -> None:
        self._waited.add(pid)

    def done_with(self, pid: int) -> None:
        """The grading child `pid` has been reaped: what it left behind is a stray from now on."""
        with self._lock:
            self._waited.discard(pid)

    def stop(self) -> None:
        """Kill the running grading children's groups (on Ctrl-C: they run in sessions of their own)."""
        for pid in list(self._waited):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def sweep(self) -> int:
        """Kill and reap every descendant not under a running grading child; the number killed."""
        if not self.active:
            return 0
        killed: set[int] = set()
        deadline = time.monotonic() + SWEEP_S
        with self._lock:
            while strays := _descendants(os.getpid(), _parents(), self._waited | self._kept):
                for pid in strays - killed:
                    if self._kill(pid, strays):
                        killed.add(pid)
                for pid in strays:
                    self._reap(pid)
                if time.monotonic() > deadline:
                    raise LabError(f"processes {sorted(strays)[:10]} left by the graded code cannot be killed")
                time.sleep(0.01)
        return len(killed)

    def _kill(self, pid: int, strays: set[int]) -> bool:
        """SIGKILL `pid` if it is still the stray we saw: pinned by a pidfd, then its ancestry checked again."""
        try:
            fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        except OSError:
            return False  # gone already
        try:
            parent = _parents_of(pid)
            if parent is None or (parent != os.getpid() and parent not in strays):
                return False  # a recycled id: not ours
            if fd is not None:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            return True
        except (ProcessLookupError, PermissionError):
            return False
        finally:
            if fd is not None:
                os.close(fd)

    @staticmethod
    def _reap(pid: int) -> None:
        """Collect `pid` if it is our dead child (its own children were re-parented to us when it died)."""
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child (yet): its parent is a stray, killed this pass


def _parents_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
