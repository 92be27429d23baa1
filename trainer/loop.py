"""The resumable epoch loop that classifier and detector training share.

After every epoch one dict holds everything needed to go on (the modules' states, the epoch,
the state kept so far), `metrics.jsonl` gets one line, and the model with the best validation
number (or the latest within a tolerance of it) is kept. Each epoch's randomness comes from a generator seeded by (seed, epoch), so a
resumed run sees exactly the batches an uninterrupted one would have seen.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from trainer import checkpoint


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


def state_copy(model: nn.Module) -> dict:
    """A detached copy of `model`'s state, which later training steps leave untouched."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The generator of epoch `epoch` (0-based) of a run seeded `seed`."""
    return torch.Generator(device).manual_seed(seed * 1000 + epoch)


def train_epochs(model: nn.Module, states: dict[str, Stateful], run_epoch: Callable[[int, torch.Generator], dict],
                 *, epochs: int, seed: int, device: torch.device, select: str, state_path: Path,
                 metrics_path: Path, label: str, stamp: Any = None, writes: bool = True,
                 baseline: Callable[[], float] | None = None, tolerance: float = 0.0,
                 log: Callable[[str], None] = print) -> float:
    """Run epochs `start..epochs-1` of `run_epoch(epoch, generator) -> record`, resuming from `state_path`.

    `states` are saved and restored under their keys (`model` itself under "state_dict");
    `record[select]` is the validation number that chooses the epoch `model` ends with. A saved state
    whose `stamp` differs is ignored. Only a process that `writes` (rank 0) writes files.
    `baseline()`, if given, is `select` of the model as it starts: epochs must beat it, so a model
    hardened from a trained one is never left worse than it began. An epoch within `tolerance` of the best
    so far replaces the kept one: a difference the validation set cannot resolve goes to the later, more
    trained epoch, while a collapse is never kept. Returns the kept epoch's value of `select`.
    """
    states = {"state_dict": model, **states}
    start, best_val, kept_val, best_state = 0, -float("inf"), -float("inf"), None
    if state_path.exists():
        last = checkpoint.load(state_path, device)
        if last.get("stamp") == stamp:
            for key, obj in states.items():
                obj.load_state_dict(last[key])
            start, best_val, best_state = last["epoch"], last["best_val"], last["best_state"]
            kept_val = last.get("kept_val", best_val)  # states saved before `tolerance` kept the best
            if writes:
                log(f"{label}: resuming at epoch {start + 1}/{epochs}")
    if start == 0 and baseline is not None:
        best_val = kept_val = baseline()
        best_state = state_copy(model)
        if writes:
            log(f"{label}: {select.replace('_', ' ')} {best_val:.4f} at the start")
    if writes and metrics_path.exists():
        # Lines of an epoch that was interrupted before its checkpoint are dropped; that epoch runs again.
        kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["epoch"] <= start]
        metrics_path.write_text("".join(line + "\n" for line in kept))
    for epoch in range(start, epochs):
        began = time.time()
        record = run_epoch(epoch, epoch_generator(seed, epoch, device))
        if record[select] > best_val - tolerance:
            kept_val, best_state = record[select], state_copy(model)
        best_val = max(best_val, record[select])
        record = {"epoch": epoch + 1, **record, "seconds": time.time() - began}
        if writes:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            checkpoint.save({"epoch": epoch + 1, **{k: obj.state_dict() for k, obj in states.items()},
                             "best_val": best_val, "kept_val": kept_val, "best_state": best_state, "stamp": stamp}, state_path)
            numbers = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in record.items()
                                if k not in ("epoch", "seconds", "lr"))
            log(f"{label}: epoch {epoch + 1}/{epochs}  {numbers}  ({record['seconds']:.1f}s)")
    model.load_state_dict(best_state)
    return kept_val
