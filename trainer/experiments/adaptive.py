"""The adaptive attack (beyond the paper) against the deployed detector at its calibrated threshold.

For reference the same images also face the detector's own training adversary (or, for a
dynamic detector, the dynamic adversary at sigma 0.5): the gap is what an attacker who knows
the detector gains.
"""
from __future__ import annotations

import torch

from trainer.attacks import AttackSpec, run_attack
from trainer.attacks.report import predict
from trainer.detect import attach, ensure_detector
from trainer.detect.evaluate import scores
from trainer.experiments import plots
from trainer.experiments.grid import cached_result, out_dir, test_set


def adaptive_attack(ctx) -> dict | None:
    """Accuracy, detection rate and evasion rate (fooled and not flagged) per attack on the deployed detector."""
    if ctx.cfg.deploy is None:
        print("experiments: adaptive attack skipped (no `deploy` detector)")
        return None
    a = ctx.cfg.experiments.adaptive
    bs = ctx.cfg.experiments.train.eval_batch_size

    def compute():
        spec = next(d for d in ctx.cfg.detectors if d.name == ctx.cfg.deploy)
        ckpt = ensure_detector(ctx, spec)
        model = attach(ctx, spec, ckpt.state_dict)
        x, y = test_set(ctx, a.test_limit)
        eps = a.eps or spec.adversary.params().get("eps")
        threshold = ckpt.threshold
        reference = spec.adversary.model_dump(exclude_none=True) | ({"sigma": 0.5} if spec.mode == "dynamic" else {})
        attacks = {"clean": None, "training adversary": AttackSpec(**{**reference, "eps": eps}),
                   "adaptive": AttackSpec(name="adaptive", eps=eps, threshold=threshold, **a.params)}
        rows = []
        for kind, attack in attacks.items():
            adv = x.float() if attack is None else run_attack(attack, ctx.classifier, x, y, model.detector_logit, batch_size=bs)
            fooled = predict(ctx.classifier, adv, bs) != y
            flagged = torch.sigmoid(scores(model.detector_logit, adv, bs, ctx.device)) > threshold
            rows.append({"attack": kind if attack is None else f"{kind} ({attack.name})", "accuracy": 1 - fooled.float().mean().item(),
                         "flagged": flagged.float().mean().item(),
                         "evaded": (fooled.cpu() & ~flagged).float().mean().item()})
        return {"detector": spec.name, "threshold": threshold, "threshold_fpr": ckpt.threshold_fpr, "eps": eps,
                "images": len(x), "rows": rows}

    result = cached_result(ctx, "adaptive", compute)
    names = [r["attack"] for r in result["rows"]]
    plots.grouped_bars(out_dir(ctx) / "adaptive.png", names,
                       {k: [r[k] for r in result["rows"]] for k in ("accuracy", "flagged", "evaded")}, "rate",
                       f"Attacks on {result['detector']} at threshold {result['threshold']:.3f}", ylim=(0, 1))
    return result
