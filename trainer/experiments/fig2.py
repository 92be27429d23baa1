"""Fig. 2: classifier accuracy vs detectability per adversary and eps (left); detectability per depth (right)."""
from __future__ import annotations

from trainer.experiments import plots
from trainer.experiments.grid import (cached_result, chosen_attack, classifier_accuracy, grid_detector_spec, label,
                                      out_dir, test_set, test_twins)
from trainer.detect import ensure_detector


def fig2_left(ctx) -> dict:
    """One static detector per adversary and eps at the adversary's depth; its test accuracy and detectability."""
    def compute():
        x, y = test_set(ctx)
        rows = [{"adversary": "No", "eps": None, "point": None, "accuracy": classifier_accuracy(ctx, x, y),
                 "detectability": 0.5, "auroc": 0.5}]  # unchanged inputs: a detector can only guess
        for grid in ctx.cfg.experiments.adversaries:
            for spec in grid.specs():
                ckpt = ensure_detector(ctx, grid_detector_spec(ctx, spec, grid.point))
                rows.append({"adversary": spec.name, "eps": spec.params().get("eps"), "point": grid.point,
                             "accuracy": classifier_accuracy(ctx, test_twins(ctx, spec), y),
                             "detectability": ckpt.detectability, "auroc": ckpt.auroc})
        return {"rows": rows}

    result = cached_result(ctx, "fig2_left", compute)
    series = {}
    for r in result["rows"]:
        xs, ys, notes = series.setdefault(r["adversary"], ([], [], []))
        xs.append(r["accuracy"]), ys.append(r["detectability"]), notes.append("" if r["eps"] is None else f"{r['eps']:g}")
    plots.curves(out_dir(ctx) / "fig2_left.png", series, "classifier accuracy on adversarial test images",
                 "detectability", "Fig. 2 (left): accuracy vs detectability")
    return result


def fig2_right(ctx) -> dict:
    """Detectability of each adversary (at its chosen eps) for detectors at every configured depth."""
    points = ctx.cfg.experiments.fig2.points

    def compute():
        rows = []
        for grid in ctx.cfg.experiments.adversaries:
            spec, acc = chosen_attack(ctx, grid)
            for p in points:
                ckpt = ensure_detector(ctx, grid_detector_spec(ctx, spec, p))
                rows.append({"adversary": label(spec), "point": p, "accuracy": acc, "detectability": ckpt.detectability})
        return {"rows": rows}

    result = cached_result(ctx, "fig2_right", compute)
    groups = list(dict.fromkeys(r["adversary"] for r in result["rows"]))
    bars = {f"AD({p})": [next(r["detectability"] for r in result["rows"] if r["adversary"] == g and r["point"] == p)
                         for g in groups] for p in points}
    plots.grouped_bars(out_dir(ctx) / "fig2_right.png", groups, bars, "detectability",
                       "Fig. 2 (right): detectability per attachment depth")
    return result
