"""`lab grade --sandbox`: how a grading child is fenced in when the graded code is someone else's.

Three fences, each on top of the plain grader (which already grades a fresh
copy of the checks and of the handed-in files in a throw-away folder, and
kills each child with its whole process group):

- a temp copy of the lab's own code (`lab/`, `plugins/`), so graded code that
  edits "the lab" edits a copy, and a minimal environment (HOME, TMPDIR and
  T2I_LAB_HOME inside the temp folder, Hugging Face offline);
- no network, and a PID namespace whose processes all die with the child:
  `unshare --user --map-root-user --net --pid --fork --kill-child` when the
  system allows it; otherwise `lab grade` says so and grades without it;
- resource limits (address space, CPU seconds, file size, processes), set by
  the harness as soft = hard limits before any graded code is imported.

It is not a container: the graded code still runs as your user and can read
and write what you can. Grade other people's code as a user that owns nothing
of value, or inside a container or VM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

UNSHARE = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"]
ADDRESS_SPACE = 16 << 30  # torch reserves several GiB of address space on import; the checks need far less memory
FILE_SIZE = 256 << 20  # the biggest file a check writes is a tiny saved model of a few MB
EXTRA_PROCESSES = 256  # on top of what the user runs already (the limit counts all of the user's threads)
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")


def isolation() -> tuple[list[str], str]:
    """The command prefix that cuts the network, or [] and the reason it is unavailable."""
    if shutil.which("unshare") is None:
        return [], "`unshare` is not installed"
    try:
        probe = subprocess.run([*UNSHARE, "true"], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"`unshare` failed: {e}"
    if probe.returncode != 0:
        return [], f"`unshare` failed: {(probe.stderr.strip().splitlines() or [f'exit status {probe.returncode}'])[-1]}"
    return UNSHARE, ""


def _user_tasks() -> int:
    """Processes and threads of this user now: RLIMIT_NPROC counts them all."""
    uid, count = os.getuid(), 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue  # the process ended while we looked
        if int(fields["Uid"].split()[0]) == uid:
            count += int(fields["Threads"])
    return count


def limits(cpu_seconds: int) -> dict[str, int]:
    """Resource limits for one grading child (not enforced for root on RLIMIT_NPROC)."""
    return {
        "RLIMIT_AS": ADDRESS_SPACE,
        "RLIMIT_CPU": cpu_seconds,
        "RLIMIT_FSIZE": FILE_SIZE,
        "RLIMIT_NPROC": _user_tasks() + EXTRA_PROCESSES,
    }


def environment(work: Path) -> dict[str, str]:
    """A minimal environment whose writable places are all inside `work`."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    kept = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
    return {
        **kept,
        "HOME": str(home),
        "T2I_LAB_HOME": str(home),
        "TMPDIR": str(work / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
