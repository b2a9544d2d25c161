"""`compile = true`: G and D through `torch.compile`, tried on one real step before training.

Compilation happens on first use, and inductor does not compile everything (on a CPU it fails on the
main job's backward): a failure mid-run would lose the run. So one step runs compiled first, with
optimisers that change nothing (SGD at lr 0); the weights, batch-norm statistics and RNGs are then put
back, so the run trains exactly the steps it would have. Where it fails: one line, and the run goes on
uncompiled."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

import torch

BACKEND = "inductor"  # torch.compile's backend (tests swap in others)

Players = tuple[torch.nn.Module, torch.nn.Module]


def try_compile(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    players: Callable[[torch.nn.Module, torch.nn.Module], Players],
    trial_step: Callable[[Players, torch.optim.Optimizer, torch.optim.Optimizer], None],
    rng: tuple[Callable[[], Any], Callable[[Any], None]],
    say: bool = True,
) -> Players | None:
    """The compiled players (`players` of the compiled G and D) when one `trial_step` with them works, else
    None. Either way the weights, statistics and RNGs (`rng`: get and set) are as they were before."""
    compiled = players(*(torch.compile(m, backend=BACKEND) for m in (generator, discriminator)))
    saved = copy.deepcopy((generator.state_dict(), discriminator.state_dict()))
    states = rng[0]()
    idle_g, idle_d = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (generator, discriminator))
    try:
        trial_step(compiled, idle_g, idle_d)
    except Exception as e:  # any backend's failure: the run must not depend on a compiler
        while (inner := getattr(e, "inner_exception", None) or e.__cause__) is not None:  # dynamo wraps it
            e = inner
        if say:
            first = (str(e).strip().splitlines() or [""])[0][:160]
            print(f"compile: torch.compile failed ({type(e).__name__}: {first}); training uncompiled", file=sys.stderr)
        compiled = None
    else:
        if say:
            backend = BACKEND if isinstance(BACKEND, str) else "custom backend"
            print(f"compile: G and D compiled ({backend})", file=sys.stderr)
    finally:
        generator.load_state_dict(saved[0])
        discriminator.load_state_dict(saved[1])
        for module in (generator, discriminator):
            module.zero_grad(set_to_none=True)
        rng[1](states)
    return compiled
