"""Leave-one-family-out: does the alarm flag the family of perturbation nobody anticipated?

    python benchmarks/leave_one_out.py                      # every family among the recipe's positives
    python benchmarks/leave_one_out.py --families sparse    # one
    python benchmarks/leave_one_out.py --table              # only tables the runs already there

For each family F among the deployed detector's adversary and positives in CONFIG (trainer/attacks/registry.py FAMILIES), trains
the recipe's detector without F (`trainer fit` into runs/lofo-F/, reusing the classifier of the recipe's own run
when it is there) and audits it per family. The table puts, for every F, the share of F's attempts the detector
flags when it never saw F beside the share the recipe's detector (trained on F) flags, at every budget of the
family table, on the data set's frames and through the camera model, with the silent misclassifications.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common.config import load_config
from trainer.attacks.registry import family
from trainer.config import Config

ROOT = Path(__file__).resolve().parents[1]
# The audit of a left-out run measures the family table alone: one short attack where the audit needs one, and
# no TPR sweep, corruptions or footage (the recipe's own run has them).
FAMILY_TABLE_ONLY = ["audit.attacks=[{name: pgd, params: {steps: 5, restarts: 1}}]", "audit.tpr_eps={}",
                     "audit.corruptions=false", "audit.footage=[]"]


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def without(cfg: Config, left_out: str) -> list[dict]:
    """The config's detectors, the deployed one without the attacks of family `left_out` (adversary or positives)."""
    out = []
    for d in cfg.detectors:
        spec = d.model_dump(mode="json", exclude_defaults=True)
        if d.name == cfg.deploy:
            kept = [p.model_dump(mode="json", exclude_none=True) for p in [d.adversary, *d.positives] if family(p.name) != left_out]
            # The first attack kept leads (the adversary: the detector's test twins), the rest stay positives.
            spec["adversary"], spec["positives"] = kept[0], kept[1:]
        out.append(spec)
    return out


def train(cfg: Config, config: Path, left_out: str, run: Path) -> None:
    """`trainer fit` of CONFIG with the family left out, into `run` (the recipe's classifier copied in, if trained)."""
    own = Path(cfg.run_dir) / "classifier.pt"
    run.mkdir(parents=True, exist_ok=True)
    if own.is_file() and not (run / "classifier.pt").exists():
        shutil.copy(own, run / "classifier.pt")  # stamped with the classifier's config, which is unchanged
    log = run / "fit.log"
    with open(log, "w") as f:
        code = subprocess.call([sys.executable, "-m", "trainer", "fit", "--config", str(config), "--set", f"run_dir={run}",
                                "--set", "detectors=" + json.dumps(without(cfg, left_out)), *[a for s in FAMILY_TABLE_ONLY
                                                                                               for a in ("--set", s)]],
                               cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if code:
        fail(f"{left_out}: trainer fit exited {code}; see {log}", 1)


def rows(audit: dict, name: str) -> dict[tuple[str, object], dict]:
    """The family table rows of family `name`, by (domain, eps)."""
    return {(r["domain"], r["eps"]): r for r in audit["families"]["rows"] if r["family"] == name}


def table(reference: Path, runs: dict[str, Path]) -> str:
    full = json.loads((reference / "audit" / "audit.json").read_text())
    lines = ["| family left out | frames | budget | attempts flagged, never trained on it | ... trained on it (the recipe) "
             "| silent, never trained on it | ... trained on it |", "|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        audit = json.loads((run / "audit" / "audit.json").read_text())
        assert name not in audit["families"]["trained_families"], f"{run} trained on {name}"
        mine, theirs = rows(audit, name), rows(full, name)
        for key, r in mine.items():
            t = theirs.get(key, {})
            lines.append(f"| {name} | {key[0]} | {r['budget']} | {r['attempts_flagged']:.3f} | {_f(t.get('attempts_flagged'))} "
                         f"| {r['silent']:.3f} | {_f(t.get('silent'))} |")
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml", help="the recipe (default: configs/demo.yaml)")
    parser.add_argument("--families", default=None, help="comma-separated families to leave out (default: every family "
                                                         "among the deployed detector's positives)")
    parser.add_argument("--table", action="store_true", help="table the runs already in runs/lofo-FAMILY/, run nothing")
    parser.add_argument("--reference", type=Path, default=None, help="the recipe's own run, trained on every family, "
                                                                    "whose audit the table compares with (default: the "
                                                                    "config's run_dir, e.g. runs/demo)")
    args = parser.parse_args()
    cfg = load_config(Config, args.config)
    deployed = next((d for d in cfg.detectors if d.name == cfg.deploy), None)
    if deployed is None:
        fail(f"{args.config}: no deployed detector", 2)
    among = list(dict.fromkeys(family(p.name) for p in [deployed.adversary, *deployed.positives]))
    chosen = among if args.families is None else args.families.split(",")
    unknown = [f for f in chosen if f not in among]
    if unknown:
        fail(f"--families: {', '.join(unknown)} not among the positives' families ({', '.join(among)})", 2)
    runs = {name: ROOT / "runs" / f"lofo-{name}" for name in chosen}
    if not args.table:
        for name, run in runs.items():
            print(f"== without {name}: {run}", flush=True)
            train(cfg, args.config, name, run)
    reference = args.reference or Path(cfg.run_dir)
    missing = [str(r) for r in [reference, *runs.values()] if not (r / "audit" / "audit.json").exists()]
    if missing:
        fail(f"not a finished run: {', '.join(missing)}", 2)
    print(table(reference, runs))


if __name__ == "__main__":
    main()
