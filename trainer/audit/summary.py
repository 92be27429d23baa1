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
    return summary
