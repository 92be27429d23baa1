"""Figs. 3 and 4: how a detector trained for one adversary fares on another eps (3) or another adversary (4)."""
from __future__ import annotations

from trainer.experiments import plots
from trainer.experiments.grid import cached_result, chosen_attack, detectability_on, grid_detector, label, out_dir


def _matrix(ctx, fits, tests) -> list[list[float]]:
    """values[i][j]: detectability of the detector trained on fits[i] = (attack, point) against attack tests[j]."""
    out = []
    for fit, point in fits:
        model = grid_detector(ctx, fit, point)
        out.append([detectability_on(ctx, model, test) for test in tests])
    return out


def fig3(ctx) -> dict:
    """eps_fit x eps_test per adversary (adversaries with fewer than two eps values are skipped)."""
    def compute():
        panels = {}
        for grid in ctx.cfg.experiments.adversaries:
            specs = grid.specs()
            if len(specs) > 1:
                eps = [f"{s.eps:g}" for s in specs]
                panels[grid.name] = {"eps": eps, "values": _matrix(ctx, [(s, grid.point) for s in specs], specs)}
        return {"panels": panels}

    result = cached_result(ctx, "fig3", compute)
    plots.matrices(out_dir(ctx) / "fig3.png", {k: (p["eps"], p["eps"], p["values"]) for k, p in result["panels"].items()},
                   "eps_test", "eps_fit")
    return result


def fig4(ctx) -> dict:
    """Adversary x adversary, each at its chosen eps (the smallest that cuts accuracy below fig2.max_accuracy)."""
    def compute():
        chosen = [(chosen_attack(ctx, g)[0], g.point) for g in ctx.cfg.experiments.adversaries]
        names = [label(s) for s, _ in chosen]
        return {"adversaries": names, "values": _matrix(ctx, chosen, [s for s, _ in chosen])}

    result = cached_result(ctx, "fig4", compute)
    plots.matrices(out_dir(ctx) / "fig4.png", {"Fig. 4": (result["adversaries"], result["adversaries"], result["values"])},
                   "tested on", "trained on")
    return result
