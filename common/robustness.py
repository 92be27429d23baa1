"""The `robustness` entry of a model's metadata: the security audit's summary, as the trainer writes it and the agent prints it.

Standard library only (the agent imports it). Optional in the contract: a model exported
without an audit has no entry, and every reader says so.
"""
from __future__ import annotations

import json

KEY = "robustness"
FIELDS = ("eps", "norm", "images", "attacks", "worst_case_undetected", "worst_case_undetected_upper", "clean_fpr",
          "benign_fpr_max", "benign_fpr_max_severe", "calibration")  # and, where the audit graded families, "families"


def describe(meta: dict[str, str]) -> str:
    """One line for operators from a model's metadata: the audit's worst case, or that the model was never audited."""
    if KEY not in meta:
        return "not audited (run `trainer audit --run RUN`, then export, to ship the result)"
    try:
        return line(json.loads(meta[KEY]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"


def describe_families(meta: dict[str, str]) -> list[str]:
    """The family table (`family_lines`) from a model's metadata; [] if it was never audited per family."""
    try:
        return family_lines(json.loads(meta[KEY])) if KEY in meta else []
    except (ValueError, TypeError, KeyError, AttributeError):
        return []  # `describe` already says the entry is unreadable


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


def family_lines(r: dict) -> list[str]:
    """The family table of an audit summary (the dict stored under KEY), for operators; [] if it has none.

    One line per family and domain: attempts flagged and silent misclassifications (fooled and not flagged)
    per l_inf budget, or at its own budget (sparse, sticker); `*` marks the families the detector trained on.
    The last line names the worst cell of all, with its 95% upper bound.
    """
    f = r.get("families")
    if not f:
        return []
    eps = list(dict.fromkeys(row["eps"] for row in f["rows"] if row["eps"] is not None))
    budgets = "/".join(f"{e:g}" for e in eps)
    lines = [f"family table (oblivious attempts; * = trained on; unattacked frames flagged: "
             + ", ".join(f"{d} {_pct(v)}" for d, v in f["unattacked_flagged"].items()) + ")",
             f"  {'family':<16} {'frames':<9} {'attempts flagged at l_inf ' + budgets:<40} silent misclassifications"]
    groups = {}
    for row in f["rows"]:
        groups.setdefault((row["family"], row["domain"], row["eps"] is None), []).append(row)
    for (name, domain, once), cells in groups.items():
        label = f"{name}{'*' if cells[0]['trained'] else ''}"
        if once:
            c = cells[0]
            lines.append(f"  {label:<16} {domain:<9} {c['budget'] + ': ' + _rate(c['attempts_flagged']):<40} {_pct(c['silent'])}")
        else:
            flagged = " ".join(_rate(c["attempts_flagged"]) for c in cells)
            lines.append(f"  {label:<16} {domain:<9} {flagged:<40} {' '.join(_pct(c['silent']) for c in cells)}")
    cells = [{**w, "budget": f"l_inf {w['eps']:g}"} for w in f["worst"]] + ([f["worst_beyond_eps"]] if f["worst_beyond_eps"] else [])
    if cells:
        w = max(cells, key=lambda c: c["silent"] or 0)
        lines.append(f"worst cell: {w['family']} ({'trained on' if w['trained'] else 'not trained on'}) on {w['domain']} "
                     f"frames at {w['budget']}: silent misclassifications {_pct(w['silent'])} (95% upper bound "
                     f"{_pct(w['silent_upper'])})")
    return lines


def _rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"
