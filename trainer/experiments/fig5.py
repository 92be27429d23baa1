"""Fig. 5: a dynamic adversary's sigma sweep against a static and a dynamically trained detector (Sec. 4.1.2)."""
from __future__ import annotations

from trainer.attacks import AttackSpec, run_attack
from trainer.attacks.report import predict
from trainer.detect import attach, ensure_detector
from common.stats import wilson_interval
from trainer.detect.evaluate import detectability
from trainer.experiments import plots
from trainer.experiments.grid import cached_result, classifier_accuracy, grid_detector_spec, out_dir, test_set


def fig5(ctx) -> dict:
    """For each sigma and detector: classifier accuracy under the attack, and detectability counting only the
    adversarial examples that cause a misclassification (with their originals), as the paper does.

    High sigmas fool the classifier on few images, so each detectability comes with the number of
    images it rests on (2 x fooled) and its 95% Wilson interval."""
    f = ctx.cfg.experiments.fig5
    bs = ctx.cfg.experiments.train.eval_batch_size

    def compute():
        x, y = test_set(ctx, f.test_limit)
        static = grid_detector_spec(ctx, AttackSpec(name=f.static_adversary, eps=f.eps), f.point)
        dynamic = grid_detector_spec(ctx, AttackSpec(name="dynamic", eps=f.eps, **f.params), f.point, "dynamic",
                                     f.dynamic_train)
        if f.harden_static:
            dynamic = dynamic.model_copy(update={"init_from": static.name})
        specs = {"static": static, "dynamic": dynamic}  # in this order: the static one must exist to harden it
        correct = predict(ctx.classifier, x, bs) == y
        rows = []
        for kind, spec in specs.items():
            model = attach(ctx, spec, ensure_detector(ctx, spec).state_dict)
            for sigma in f.sigmas:
                attack = AttackSpec(name="dynamic", eps=f.eps, sigma=sigma, **f.params)
                adv = run_attack(attack, ctx.classifier, x, y, model.detector_logit, batch_size=bs)
                # Only examples the attack made wrong count: an image the classifier already gets wrong proves nothing.
                fooled = correct & (predict(ctx.classifier, adv, bs) != y)
                n = int(fooled.sum())
                d = detectability(model.detector_logit, x[fooled], adv[fooled], bs, ctx.device) if n else None
                rows.append({"detector": kind, "sigma": sigma, "accuracy": classifier_accuracy(ctx, adv, y), "fooled": n,
                             "detectability": d, "ci95": None if d is None else wilson_interval(round(d * 2 * n), 2 * n)})
        return {"rows": rows, "eps": f.eps, "images": len(x)}

    result = cached_result(ctx, "fig5", compute)
    series = {}
    for r in result["rows"]:
        if r["detectability"] is not None:
            xs, ys, notes = series.setdefault(f"{r['detector']} detector", ([], [], []))
            xs.append(r["accuracy"]), ys.append(r["detectability"]), notes.append(f"{r['sigma']:g}")
    plots.curves(out_dir(ctx) / "fig5.png", series, "classifier accuracy under the dynamic adversary",
                 "detectability (fooling examples only)", f"Fig. 5: dynamic adversary, eps={f.eps:g}, labels = sigma")
    return result
