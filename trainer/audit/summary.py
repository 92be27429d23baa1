"""RUN/audit/audit.json and the summary of it that `export` ships as the model's `robustness` metadata.

Light on purpose (no torch): the exporter reads it for every model it writes.
"""
from __future__ import annotations

import json
from pathlib import Path

from common.stats import wilson_interval
from trainer.audit.corruptions import SEVERITIES


def audit_dir(run_dir: Path) -> Path:
    """Where a run's audit lives: audit.json, its figures and report.md."""
    return Path(run_dir) / "audit"


def shipped_robustness(run_dir: Path, classifier_sha256: str, detector_sha256: str) -> dict | None:
    """The summary of RUN's audit if it audited exactly these checkpoints (else None: never audited, or stale)."""
    path = audit_dir(run_dir) / "audit.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    stamp = result.get("stamp", {})
    if (stamp.get("classifier_sha256"), stamp.get("detector_sha256")) != (classifier_sha256, detector_sha256):
        return None
    return robustness(result)


def robustness(result: dict) -> dict:
    """The summary `export` ships under the metadata key `robustness` (fields: common/robustness.py)."""
    eps = result["headline_eps"]
    worst = {w["eps"]: w for w in result["worst_case"]}
    # Severities 1-2 are the ordinary days the threshold is calibrated for; 3 is reported apart, never mixed in.
    benign = [r["fpr"] for r in result["corruptions"] if 0 < r["severity"] < SEVERITIES]
    severe = [r["fpr"] for r in result["corruptions"] if r["severity"] == SEVERITIES]
    summary = {"eps": eps, "norm": result["norm"], "images": result["correct"],
               "attacks": sorted({r["attack"] for r in result["attacks"] if r["threat"] != "patch"}),
               "worst_case_undetected": worst[eps]["undetected"] if eps in worst else None,
               # The 95% Wilson upper bound: a few hundred images give a point estimate the next few hundred may exceed.
               "worst_case_undetected_upper": (wilson_interval(round(worst[eps]["undetected"] * result["correct"]),
                                                               result["correct"])[1]
                                               if eps in worst and worst[eps]["undetected"] is not None else None),
               "clean_fpr": result["clean_fpr"], "benign_fpr_max": max(benign, default=None),
               "benign_fpr_max_severe": max(severe, default=None),
               "calibration": result.get("calibration", "clean")}
    if None in worst:
        summary["patch_undetected"] = worst[None]["undetected"]
    if result.get("families"):
        summary["families"] = families(result["families"])
    return summary


def families(graded: dict) -> dict:
    """The family table as shipped: every row, each domain's unattacked false alarms, and per budget the worst
    family's silent misclassification rate with its 95% Wilson upper bound (the headline: the worst family, not PGD)."""
    rows = graded["rows"]
    worst = []
    for eps in dict.fromkeys(r["eps"] for r in rows if r["eps"] is not None):
        w = max((r for r in rows if r["eps"] == eps), key=lambda r: r["silent"] or 0)
        worst.append({"eps": eps, "family": w["family"], "domain": w["domain"], "trained": w["trained"],
                      "silent": w["silent"], "silent_upper": wilson_interval(w["silent_count"], w["images"])[1]})
    beyond = [{"family": r["family"], "budget": r["budget"], "domain": r["domain"], "trained": r["trained"],
               "silent": r["silent"], "silent_upper": wilson_interval(r["silent_count"], r["images"])[1]}
              for r in rows if r["eps"] is None]
    return {"rows": [{k: r[k] for k in ("family", "domain", "eps", "budget", "trained", "attempts_flagged", "silent")}
                     for r in rows],
            "unattacked_flagged": {d["domain"]: d["flagged"] for d in graded["domains"]},
            "worst": worst, "worst_beyond_eps": max(beyond, key=lambda r: r["silent"] or 0, default=None)}
