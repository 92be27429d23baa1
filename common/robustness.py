"""The `robustness` entry of a model's metadata: the security audit's summary, as the trainer writes it and the agent prints it.

Standard library only (the agent imports it). Optional in the contract: a model exported
without an audit has no entry, and every reader says so.
"""
from __future__ import annotations

import json

KEY = "robustness"
FIELDS = ("eps", "norm", "images", "attacks", "worst_case_undetected", "worst_case_undetected_upper", "clean_fpr",
          "benign_fpr_max", "benign_fpr_max_severe", "calibration")


def describe(meta: dict[str, str]) -> str:
    """One line for operators from a model's metadata: the audit's worst case, or that the model was never audited."""
    if KEY not in meta:
        return "not audited (run `trainer audit --run RUN`, then export, to ship the result)"
    try:
        return line(json.loads(meta[KEY]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"


def line(r: dict) -> str:
    """One line from an audit summary (the dict stored under KEY)."""
    upper = r.get("worst_case_undetected_upper")
    text = (f"worst-case undetected error {_pct(r['worst_case_undetected'])}"
            + (f" (95% upper bound {_pct(upper)})" if upper is not None else "") + f" at {r['norm']} eps {r['eps']:g} "
            f"({r['images']} images, {len(r['attacks'])} attacks: {', '.join(r['attacks'])}); "
            f"clean FPR {_pct(r['clean_fpr'])}, worst benign-corruption FPR {_pct(r['benign_fpr_max'])}"
            + (f" at severity 1-2, {_pct(r['benign_fpr_max_severe'])} at 3" if "benign_fpr_max_severe" in r else ""))
    text += f"; threshold set on {r.get('calibration', 'clean')} validation images"
    return text + (f"; patch {_pct(r['patch_undetected'])}" if r.get("patch_undetected") is not None else "")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"
