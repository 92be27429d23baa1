"""The audit as a cached stage: RUN/audit/audit.json, reused while the audit config, classifier and detector are unchanged."""
from __future__ import annotations

from common.robustness import line
from trainer import stamped
from trainer.audit.report import write_report
from trainer.audit.runner import audit
from trainer.audit.summary import audit_dir, robustness
from trainer.audit.target import load_target


def audit_run(ctx, progress: bool = True) -> dict:
    """Audit the run of `ctx` (or load the cached result), write its figures and report.md under RUN/audit/."""
    cfg = ctx.cfg.audit
    t = load_target(ctx, cfg.images)
    stamp = {"audit": cfg.model_dump(mode="json"), "detector": t.detector, "classifier_sha256": t.classifier_sha256,
             "detector_sha256": t.detector_sha256}
    result = stamped.cached(audit_dir(ctx.run_dir) / "audit.json", stamp, lambda: {**audit(cfg, t, progress), "headline_eps": cfg.headline})
    write_report(result, audit_dir(ctx.run_dir))
    return result


def run_audit_stage(ctx) -> None:
    """`trainer fit`'s last stage (rank 0, when audit.enabled): audit the deployed detector and print the worst case."""
    if not ctx.is_main or not ctx.cfg.audit.enabled:
        return
    if (ctx.cfg.audit.detector or ctx.cfg.deploy) is None:
        print("audit: skipped (no `deploy` detector)")
        return
    result = audit_run(ctx)
    print(f"audit: {line(robustness(result))} -> {audit_dir(ctx.run_dir) / 'report.md'}")
