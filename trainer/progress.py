"""The trainer's progress bars: live on a terminal, silent when stderr is a file or a pipe.

tqdm redraws a bar with carriage returns; in a log file (`scripts/main_job.sh > log 2>&1`)
every redraw stays, tens of kilobytes of them. Epoch and stage lines are printed anyway.
"""
from __future__ import annotations

from tqdm import tqdm


def progress_bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """A tqdm bar over `iterable`, drawn only when `show` and stderr is a terminal."""
    return tqdm(iterable, disable=None if show else True, **kwargs)
