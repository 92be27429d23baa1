"""Results saved with the stamp of what made them: reused while the stamp is unchanged, else made again.

A stamp is a JSON-ready dict of what determines a result (config sections, hashes of the
checkpoints it was made from). It is saved with the result in one of three layouts, each kept
by files that exist in run directories today:
    key "stamp" (the default)   the stamp under that key of the result
    key None                    the stamp's keys beside the result's own (checkpoints read field by field)
    stamp None                  the file's name holds the stamp (a hash in it): any file there is the result
Files ending in .json are JSON, all others torch checkpoints; both are written atomically, so an
interrupted save never leaves a file that looks done.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from common.files import write_atomic
from trainer import checkpoint

STAMP = "stamp"


def _as_written(made: Any) -> Any:
    return made


def made_under(saved: dict, stamp: dict, key: str | None = STAMP, old: Callable[[Any], Any] = _as_written) -> bool:
    """Whether `saved` records `stamp`; `old` first maps the recorded stamp, for stamps earlier versions wrote."""
    made = saved.get(key) if key is not None else {k: saved.get(k) for k in stamp}
    return old(made) == stamp


def load(path: str | Path, stamp: dict | None, *, key: str | None = STAMP, old: Callable[[Any], Any] = _as_written,
         device: str | torch.device = "cpu") -> Any:
    """The result saved at `path` if it was made under `stamp`, else None (nothing saved, or under another stamp)."""
    path = Path(path)
    if not path.exists():
        return None
    saved = json.loads(path.read_text()) if path.suffix == ".json" else checkpoint.load(path, device)
    return saved if stamp is None or made_under(saved, stamp, key, old) else None


def save(path: str | Path, result: Any, stamp: dict | None, *, key: str | None = STAMP) -> Any:
    """`result` with `stamp` in the layout `key` gives, written atomically to `path`; returns what was written."""
    path = Path(path)
    if stamp is not None:
        result = {**result, key: stamp} if key is not None else {**result, **stamp}
    if path.suffix == ".json":
        write_atomic(path, json.dumps(result, indent=1).encode())
    else:
        checkpoint.save(result, path)
    return result


def cached(path: str | Path, stamp: dict | None, compute: Callable[[], Any], *, key: str | None = STAMP,
           device: str | torch.device = "cpu") -> Any:
    """The result saved at `path` under `stamp`, else `compute()` saved there with it.

    `compute` runs with torch's random state seeded from the file's name and the stamp, and restored after:
    a result (an attack's random starts, say) is then the same whether a run makes it straight through or
    after a resume, whatever ran before it in the process, and the random state after it is the same
    whether it was made or loaded.
    """
    found = load(path, stamp, key=key, device=device)
    if found is not None:
        return found
    identity = hashlib.blake2b(f"{Path(path).name}:{json.dumps(stamp, sort_keys=True)}".encode(), digest_size=8)
    with seeded(int.from_bytes(identity.digest(), "little") >> 1):
        return save(path, compute(), stamp, key=key)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's random state seeded with `seed` inside the block and restored after it: what the block draws is
    the same whatever ran before it in the process, and what runs after it draws as if the block had not run."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
        torch.manual_seed(seed)
        yield
