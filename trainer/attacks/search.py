"""The two loops attacks with restarts share: PGD that keeps its best iterate, and restarts that keep the first success.

An attack states its objective so that objective > 0 means success on the rounded frame, and
higher is closer to it; both loops then keep, per sample, the best image they have seen.
"""
from __future__ import annotations

from typing import Callable

import torch

from trainer.attacks._ops import per_sample

# run(idx, restart) -> (x_adv [n, C, H, W], success [n] bool, objective [n]) for the samples idx.
Run = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def best_of_restarts(x: torch.Tensor, restarts: int, run: Run) -> torch.Tensor:
    """Per sample, the first restart whose result succeeds, else the result with the highest objective.

    Each restart runs only on the samples no earlier restart has solved. Returns [N, C, H, W].
    """
    best, best_obj = x.clone(), torch.full((len(x),), -torch.inf, device=x.device)
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        idx = (~done).nonzero().squeeze(1)
        if not len(idx):
            break
        x_run, success, obj = run(idx, restart)
        better = success | (obj > best_obj[idx])
        best[idx[better]] = x_run[better].detach()
        best_obj[idx[better]] = obj[better]
        done[idx[success]] = True
    return best


def ascend(start: torch.Tensor, step: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], alpha: float,
           steps: int, constrain: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """x_0 = start, x_{n+1} = constrain(x_n + alpha * u_n), returning per sample the x_n of highest objective.

    `step(x_n)` gives the unit step u_n and the objective of x_n [N] from one forward pass;
    `constrain` maps a step's result back into the threat model (e.g. `project` onto the eps-ball).
    Keeping the best iterate matters for attacks that switch between losses, whose iterates
    move in and out of success. Returns (best iterates [N, C, H, W], their objectives [N]).
    """
    x_n, best, best_obj = start, start, torch.full((len(start),), -torch.inf, device=start.device)
    for n in range(steps + 1):
        u, obj = step(x_n)
        better = obj > best_obj
        best, best_obj = torch.where(per_sample(better, x_n), x_n, best), torch.where(better, obj, best_obj)
        if n < steps:
            x_n = constrain(x_n + alpha * u)
    return best, best_obj
