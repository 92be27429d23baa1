"""The main job's headline numbers across seeds: runs `scripts/main_job.sh SEED` for each seed and tables them.

    python benchmarks/seeds.py --seeds 0,1,2          # ~3 main jobs; runs/demo-seedN/ each
    python benchmarks/seeds.py --seeds 0,1,2 --table  # only tables the runs already there

A seeded number that moves with the seed is not a result: each row shows every seed, then the spread
(max - min). Numbers come from each run's audit.json (held-out test images, shipped threshold), the
agent's summary of the demo stream and the footage logs.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from trainer.audit.summary import robustness

ROOT = Path(__file__).resolve().parents[1]


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def seeds_arg(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is one error line and exit 2."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        fail(f"--seeds: a comma-separated list of integers, got {text!r}", 2)
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        fail(f"--seeds: distinct non-negative integers, got {text!r}", 2)
    return seeds


def headline(run: Path) -> dict[str, float | str]:
    """The headline rows of one finished main-job run."""
    audit = json.loads((run / "audit" / "audit.json").read_text())
    out: dict[str, float | str] = {}
    for r in audit["tpr_by_size"]:
        out[f"attempts flagged {r['norm']} {r['eps']:g}"] = r["attempts_flagged"]
    for r in audit["tpr_by_size"]:
        if "attempts_judged_flagged" in r:  # what the agent flags: the familiarity gate judges the frame first
            out[f"attempts judged and flagged {r['norm']} {r['eps']:g}"] = r["attempts_judged_flagged"]
    for r in audit["tpr_by_size"]:
        if (r["norm"], r["eps"]) in (("linf", 32.0), ("l2", 1000.0)):
            out[f"TPR on fooling {r['norm']} {r['eps']:g}"] = r["tpr"]
    corr = audit["corruptions"]
    out["benign FPR, severity 1-2 (max over kinds)"] = max(c["fpr"] for c in corr if c["severity"] in (1, 2))
    out["benign FPR, severity 3 (max over kinds)"] = max(c["fpr"] for c in corr if c["severity"] == 3)
    out["clean FPR"] = audit["clean_fpr"]
    out["clean accuracy"] = audit["clean_accuracy"]
    shipped = robustness(audit)  # what export puts in the model's metadata
    out["worst-case undetected, eps 4"] = shipped["worst_case_undetected"]
    out["worst case, 95% Wilson upper bound"] = shipped["worst_case_undetected_upper"]
    out |= family_rows(audit)
    log = (run / "stream" / "watch.log").read_text()
    bursts = re.findall(r"^(.+) bursts: .*alerted on (\d+)/(\d+) bursts", log, re.M)
    out["bursts alerted, every kind"] = (f"{sum(int(a) for _, a, _ in bursts)}/{sum(int(b) for _, _, b in bursts)}"
                                         if bursts else "n/a")
    out["kinds with a burst not alerted"] = ", ".join(k for k, a, b in bursts if a != b) or "none"
    elsewhere = re.search(r"alerts on adversarial frames: \d+, elsewhere: (\d+)", log)
    out["stream alerts elsewhere"] = elsewhere[1] if elsewhere else "n/a"
    footage = [re.search(r"(\d+) alert\(s\)", f.read_text()) for f in sorted((run / "footage").glob("*.log"))]
    out["footage alerts"] = "+".join(m[1] for m in footage if m) or "n/a"
    timing = run / "main_job.seconds"
    out["main job seconds"] = float(timing.read_text()) if timing.exists() else "n/a"
    return out


def family_rows(audit: dict) -> dict[str, float | str]:
    """The family table's rows of one run: unattacked camera frames flagged, the worst family's silent
    misclassifications per budget (which family, on which frames), attempts flagged per dense family and
    budget, and the silent rate of the families attacked at their own budget."""
    f = audit.get("families")
    if not f:
        return {}
    out: dict[str, float | str] = {f"unattacked {d['domain']} frames flagged": d["flagged"] for d in f["domains"]}
    for w in robustness(audit)["families"]["worst"]:
        out[f"silent, worst family, l_inf {w['eps']:g}"] = w["silent"]
        out[f"  worst family at l_inf {w['eps']:g}"] = f"{w['family']} ({w['domain']})"
    for r in f["rows"]:
        if r["eps"] is None:
            out[f"silent, {r['family']} ({r['domain']}, {r['budget']})"] = r["silent"]
        elif r["eps"] >= 8:
            out[f"attempts flagged, {r['family']} ({r['domain']}) l_inf {r['eps']:g}"] = r["attempts_flagged"]
    return out


def table(runs: dict[int, Path]) -> str:
    rows = {seed: headline(run) for seed, run in runs.items()}
    keys = list(next(iter(rows.values())))
    lines = ["| | " + " | ".join(f"seed {s}" for s in rows) + " | spread |", "|---|" + "---|" * (len(rows) + 1)]
    for key in keys:
        values = [rows[s][key] for s in rows]
        numbers = [v for v in values if isinstance(v, float)]
        spread = f"{max(numbers) - min(numbers):.3f}" if len(numbers) == len(values) else ""
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--table", action="store_true", help="table the runs already in runs/demo-seedN/, run nothing")
    args = parser.parse_args()
    runs = {s: ROOT / "runs" / f"demo-seed{s}" for s in seeds_arg(args.seeds)}
    if not args.table:
        for seed, run in runs.items():
            print(f"== seed {seed}: scripts/main_job.sh {seed}", flush=True)
            log = run.with_suffix(".log")
            run.parent.mkdir(exist_ok=True)
            with open(log, "w") as f:
                code = subprocess.call([str(ROOT / "scripts" / "main_job.sh"), str(seed)], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
            if code:
                fail(f"seed {seed}: scripts/main_job.sh exited {code}; see {log}", 1)
            done = re.search(r"main job done in (\d+) s", log.read_text())
            if done:
                (run / "main_job.seconds").write_text(done[1])
    missing = [str(r) for r in runs.values() if not (r / "audit" / "audit.json").exists()]
    if missing:
        fail(f"not a finished main-job run: {', '.join(missing)}", 2)
    print(table(runs))


if __name__ == "__main__":
    main()
