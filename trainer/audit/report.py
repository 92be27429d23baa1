"""RUN/audit/: the security curve and TPR-by-size figures and report.md, from an audit result."""
from __future__ import annotations

from pathlib import Path

from trainer.experiments import plots
from trainer.experiments.report import _f, _table


def write_report(r: dict, out: Path) -> None:
    """security_curve.png, tpr_by_size.png and report.md in `out` (figures linked relative to it)."""
    curve = {}
    for row in r["attacks"]:
        if row["threat"] != "patch":
            xs, ys = curve.setdefault(_name(row), ([], []))
            xs.append(row["eps"]), ys.append(row["undetected"])
    curve["worst case"] = ([w["eps"] for w in r["worst_case"] if w["eps"] is not None],
                           [w["undetected"] for w in r["worst_case"] if w["eps"] is not None])
    plots.line_panels(out / "security_curve.png", {f"{r['detector']} at p_adv >= {r['threshold']:.4f}": curve},
                      f"eps ({r['norm']}, 0..255 units)", "undetected error (fooled and not flagged)")
    by_size = {}
    for row in r["tpr_by_size"]:
        xs, ys = by_size.setdefault(f"{row['norm']} ({row['attack']})", {}).setdefault("TPR on fooling images", ([], []))
        xs.append(row["eps"]), ys.append(row["tpr"])
    if by_size:  # an audit without a TPR sweep (tpr_eps: {}) has no such figure
        plots.line_panels(out / "tpr_by_size.png", by_size, "perturbation budget (0..255 units)", "TPR at the shipped threshold", logx=True)
    (out / "report.md").write_text("\n".join(report_lines(r)) + "\n")


def _name(row: dict) -> str:
    return f"{row['attack']} ({'adaptive' if row['adaptive'] else 'oblivious'})"


def report_lines(r: dict) -> list[str]:
    """The audit's markdown section."""
    eps = [w["eps"] for w in r["worst_case"] if w["eps"] is not None]
    undetected = {(_name(row), row["eps"]): row["undetected"] for row in r["attacks"] if row["threat"] != "patch"}
    names = list(dict.fromkeys(n for n, _ in undetected))
    worst = {w["eps"]: w for w in r["worst_case"]}
    lines = [
        "## Security audit of the deployed detector",
        "",
        f"Detector `{r['detector']}` at its shipped threshold p_adv >= {r['threshold']:.4f} (FPR {r['threshold_fpr']} on clean "
        f"validation images). {r['images']} test images (indices {r['first_test_image']}+ of the test split; "
        f"{r['overlap_with_detector_evaluation']} of them also in the detectors' reported evaluation, none trained or "
        f"calibrated on): clean accuracy {_f(r['clean_accuracy'])}, clean FPR {_f(r['clean_fpr'])}. Attacks run on the "
        f"{r['correct']} correctly classified ones; outputs are rounded to uint8 before scoring. Undetected error = "
        "misclassified AND not flagged, over those images; worst case = per image over all attacks. Flagged means "
        "p_adv >= threshold alone: the agent's familiarity gate is not credited, so a frame it would report as "
        "scene_unfamiliar instead of judging it counts as the attacker's win whenever p_adv is below the threshold, "
        "and the undetected error bounds the agent's silent misclassifications from above.",
        "",
        "![security curve](security_curve.png)",
        "",
        *_table([f"undetected error \\ {r['norm']} eps", *[f"{e:g}" for e in eps]],
                [[n, *[undetected.get((n, e)) for e in eps]] for n in names]
                + [["**worst case**", *[worst[e]["undetected"] for e in eps]],
                   ["worst case: fooled", *[worst[e]["fooled"] for e in eps]],
                   ["worst case: TPR on fooling images", *[worst[e]["tpr"] for e in eps]]]),
        "",
        *([f"Stickers (a square patch, unbounded inside; its own threat model, not in the eps curve): worst-case "
           f"undetected error {_f(worst[None]['undetected'])} over {', '.join(worst[None]['attacks'])}.", ""]
          if None in worst else []),
        "Per attack and eps (fooled = misclassified within the budget; TPR = flagged among those; attempts flagged = "
        "flagged among all outputs, fooling or not; size = median "
        f"{r['norm']} of the perturbation):",
        "",
        *_table(["attack", "threat", "eps", "fooled", "TPR", "attempts flagged", "undetected", "median size", "parameters"],
                [[row["attack"], row["threat"], row["eps"], row["fooled"], row["tpr"], row.get("attempts_flagged"),
                  row["undetected"], row["median_size"],
                  ", ".join(f"{k}={v}" for k, v in row["params"].items() if k not in ("eps", "threshold"))]
                 for row in r["attacks"]]),
        "",
        "### TPR against perturbation size (oblivious PGD, 10 steps)",
        "",
        "![TPR by size](tpr_by_size.png)",
        "",
        "Attempts unfamiliar: called unfamiliar by the agent's familiarity gate, which does not judge their p_adv; "
        "attempts judged and flagged: what the agent flags (flagged and familiar).",
        "",
        *_table(["norm", "eps", "fooled", "TPR on fooling images", "attempts flagged", "attempts unfamiliar",
                 "attempts judged and flagged"],
                [[x["norm"], x["eps"], x["fooled"], x["tpr"], x.get("attempts_flagged"), x.get("attempts_unfamiliar"),
                  x.get("attempts_judged_flagged")] for x in r["tpr_by_size"]]),
        "",
    ]
    if r.get("families"):
        lines += _family_section(r["families"])
    if r["corruptions"]:
        sev = sorted({x["severity"] for x in r["corruptions"] if x["severity"]})
        get = {(x["corruption"], x["severity"]): x for x in r["corruptions"]}
        names = list(dict.fromkeys(x["corruption"] for x in r["corruptions"] if x["severity"]))
        lines += ["### False alarms under benign corruptions (all audit images, shipped threshold)", "",
                  *_table(["corruption", *[f"FPR s{s}" for s in sev], *[f"accuracy s{s}" for s in sev]],
                          [["none", get[("none", 0)]["fpr"], *[""] * (len(sev) - 1), get[("none", 0)]["accuracy"], *[""] * (len(sev) - 1)]]
                          + [[n, *[get[(n, s)]["fpr"] for s in sev], *[get[(n, s)]["accuracy"] for s in sev]] for n in names]), ""]
    if r["footage"]:
        lines += ["### False alarms on real clean footage (frames preprocessed as the agent does)", "",
                  *_table(["video", "frames", "FPR"], [[x["video"], x["frames"] or "skipped (file missing)", x["fpr"]] for x in r["footage"]]), ""]
    return lines


def _family_section(f: dict) -> list[str]:
    """The family table: per family, domain and budget, attempts flagged, fooled, TPR and silent misclassifications."""
    return ["### The alarm per family of perturbation (oblivious attempts, shipped threshold)", "",
            "Each family attacks the classifier alone. Trained on: the detector saw this family among its positives; "
            "not trained on: it never did, so the row measures generalisation, not memory. Silent = fooled and not "
            "flagged, over the images attacked. Camera: the frames went through the camera model (black level, shot "
            f"and read noise) before the attack. The detector trained on: {', '.join(f['trained_families'])}.", "",
            *_table(["domain", "images", "accuracy", "unattacked flagged"],
                    [[d["domain"], d["correct"], d["accuracy"], d["flagged"]] for d in f["domains"]]), "",
            *_table(["family", "trained on", "domain", "budget", "attempts flagged", "fooled", "TPR on fooling", "silent"],
                    [[x["family"], "yes" if x["trained"] else "**no**", x["domain"], x["budget"], x["attempts_flagged"],
                      x["fooled"], x["tpr"], x["silent"]] for x in f["rows"]]), ""]
