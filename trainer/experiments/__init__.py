"""The paper's experiments (Figs. 2-5) and the adaptive attack, each cached in run_dir/experiments/, then report.md."""
from __future__ import annotations

from trainer.experiments.adaptive import adaptive_attack
from trainer.experiments.fig2 import fig2_left, fig2_right
from trainer.experiments.fig5 import fig5
from trainer.experiments.report import write_report
from trainer.experiments.transfer import fig3, fig4


def run_experiments(ctx) -> None:
    """Run every enabled experiment not already done and (re)write run_dir/report.md (rank 0 only)."""
    if not ctx.is_main or not ctx.cfg.experiments.enabled:
        return
    e = ctx.cfg.experiments
    if (e.fig2.enabled or e.fig3.enabled or e.fig4.enabled) and not e.adversaries:
        print("experiments: Figs. 2-4 skipped (experiments.adversaries is empty)")
    results = {}
    for name, enabled, fn in [("fig2_left", e.fig2.enabled and e.adversaries, fig2_left),
                              ("fig2_right", e.fig2.enabled and e.adversaries, fig2_right),
                              ("fig3", e.fig3.enabled and e.adversaries, fig3), ("fig4", e.fig4.enabled and e.adversaries, fig4),
                              ("fig5", e.fig5.enabled, fig5), ("adaptive", e.adaptive.enabled, adaptive_attack)]:
        if enabled:
            print(f"experiments: {name}")
            results[name] = fn(ctx)
    write_report(ctx, {k: v for k, v in results.items() if v is not None})
