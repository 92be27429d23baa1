"""The figures' matplotlib code: line/scatter plots, grouped bars, annotated matrices, all written as PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curves(path: Path, series: dict[str, tuple[list[float], list[float], list[str]]], xlabel: str, ylabel: str,
           title: str, chance: bool = True) -> None:
    """One marked line per series of (x, y, point labels), e.g. accuracy vs detectability (Figs. 2 left, 5)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (xs, ys, notes) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
        for x, y, note in zip(xs, ys, notes):
            ax.annotate(note, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if chance:
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0.4, 1.02))
    ax.legend(fontsize=8)
    _save(fig, path)


def line_panels(path: Path, panels: dict[str, dict[str, tuple[list[float], list[float]]]], xlabel: str, ylabel: str,
                logx: bool = False) -> None:
    """Side-by-side panels of rates (0..1) against a budget, one marked line per series of (x, y); a series named
    `worst case` is drawn bold in black (the audit's security curve and TPR against perturbation size)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels.items()):
        for name, (xs, ys) in series.items():
            style = {"color": "black", "lw": 2.5} if name == "worst case" else {}
            ax.plot(xs, ys, marker="o", label=name, **style)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
        if logx:
            ax.set_xscale("log")
        ax.legend(fontsize=8)
    _save(fig, path)


def grouped_bars(path: Path, groups: list[str], bars: dict[str, list[float]], ylabel: str, title: str,
                 ylim: tuple[float, float] = (0.4, 1.02)) -> None:
    """Bars per group (e.g. adversary) and series (e.g. attachment depth), as in Fig. 2 right."""
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4.5))
    width = 0.8 / max(len(bars), 1)
    for i, (name, values) in enumerate(bars.items()):
        ax.bar(np.arange(len(groups)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, rotation=20, fontsize=8)
    ax.set(ylabel=ylabel, title=title, ylim=ylim)
    ax.legend(fontsize=8)
    _save(fig, path)


def matrices(path: Path, panels: dict[str, tuple[list[str], list[str], list[list[float]]]], xlabel: str,
             ylabel: str) -> None:
    """Annotated heat maps, one panel per (row labels, column labels, values), as in Figs. 3 and 4."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, (rows, cols, values)) in zip(axes[0], panels.items()):
        v = np.array(values)
        ax.imshow(v, vmin=0.5, vmax=1.0, cmap="viridis")
        for (i, j), x in np.ndenumerate(v):
            ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=8, color="white" if x < 0.8 else "black")
        ax.set_xticks(range(len(cols)), cols, rotation=30, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    _save(fig, path)
