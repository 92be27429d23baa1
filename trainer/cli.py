"""The `trainer` command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from common.config import ConfigError, load_config
from common.errors import UserError, reported
from common.robustness import line as robustness_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train the classifier, the adversary detectors and run the paper's experiments.")


@app.command()
def fit(
    config: Path = typer.Option(..., "--config", "-c", help="YAML config, e.g. configs/fashion-mnist.yaml (schema: trainer/config.py)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                                                  help="Override one config value, e.g. --set train.epochs=3 (repeatable; values are YAML)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where outputs go (overrides run_dir in the config). Rerunning resumes there."),
) -> None:
    """Run every stage of CONFIG that is not already done in its run directory.

    Stages: classifier, detectors, experiments. Each is cached in the run directory,
    so an interrupted run resumes and a finished one does no work. Under
    `torchrun --nproc-per-node N -m trainer fit ...` the classifier trains with DDP.
    """
    from trainer.config import Config
    from trainer.run import fit as run_fit

    try:
        with reported():
            cfg = load_config(Config, config, list(overrides or []) + ([f"run_dir={run_dir}"] if run_dir else []))
            run_fit(cfg)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        raise typer.Exit(130) from None


@app.command()
def audit(
    run: Path = typer.Option(..., "--run", help="A run directory written by `trainer fit`: its config.yaml, classifier "
                                                "and trained `deploy` detector are audited."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                                                  help="Override an audit setting (keys audit.* and device), e.g. "
                                                       "--set audit.eps=[2,4] --set audit.images=500 --set audit.steps=50 "
                                                       "(repeatable; values are YAML; schema: AuditConfig in trainer/config.py)."),
) -> None:
    """Security audit of RUN's deployed classifier + detector at its shipped threshold.

    Every attack of `audit.attacks` (oblivious ones that know the classifier, adaptive ones that
    also know the detector and threshold) at every `audit.eps`, on held-out test images the
    classifier gets right, outputs rounded to uint8; each image's worst case over all attacks;
    TPR against perturbation size; FPR under benign corruptions and on real footage. Writes
    RUN/audit/audit.json, security_curve.png, tpr_by_size.png and report.md; an unchanged rerun
    does no work. `python -m export onnx` then ships the summary in the model's metadata.
    """
    from trainer.audit.stage import audit_run
    from trainer.audit.summary import audit_dir, robustness
    from trainer.audit.target import audited_detector
    from trainer.config import Config
    from trainer.run import open_run

    with reported():
        wrong = [o for o in overrides or [] if not o.startswith(("audit.", "device="))]
        if wrong:
            raise ConfigError(f"--set {wrong[0]}: `trainer audit` changes only audit.* and device (retrain with `trainer fit`)")
        if not (run / "config.yaml").is_file():
            raise ConfigError(f"{run} is not a run directory (no config.yaml)")
        cfg = load_config(Config, run / "config.yaml", [*(overrides or []), f"run_dir={run}"])
        audited_detector(cfg)  # before loading data and models: a run with nothing to audit fails at once
        result = audit_run(open_run(cfg))
    print(f"robustness: {robustness_line(robustness(result))}")
    print(f"report -> {audit_dir(run) / 'report.md'}; ship it with: python -m export onnx --run {run}")


@app.command("demo-stream")
def demo_stream(
    run: Path = typer.Option(..., "--run", help="A finished run directory (classifier and detector trained)."),
    out: Path = typer.Option(Path("demo"), "--out", help="Where frames/%05d.png and labels.json are written."),
    detector: Optional[str] = typer.Option(None, "--detector", help="Detector whose adversary attacks the frames; default: the run's `deploy`."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Frames in the stream, drawn in order from the test "
                                         "set; default: one burst of every kind (each family of the run's audit and the "
                                         "adaptive attack, on the data set's frames, then through the camera model)."),
    burst: int = typer.Option(8, "--burst", min=1, help="Consecutive adversarial frames per burst."),
    period: int = typer.Option(60, "--period", min=2, help="A burst starts mid-way through every PERIOD frames: with the "
                               "agent's default debounce (clear after 10 frames below, then a cooldown of 30) a shorter "
                               "period hides every other burst behind the cooldown of the one before."),
    eps: float = typer.Option(16.0, "--eps", min=0, help="l_inf budget (0..255 units) of the families' oblivious bursts."),
) -> None:
    """Write a lossless demo stream of test images with adversarial bursts at known frames.

    Feed it to `agent watch --source OUT/frames/%05d.png --labels OUT/labels.json` to see
    alerts fire on the bursts and get detection and false-alarm rates.
    """
    from trainer.demo_stream import write_demo_stream

    with reported():
        if burst >= period:
            raise UserError("--burst must be shorter than --period")
        result = write_demo_stream(run, out, detector, frames, burst, period, eps)
    print(f"{result['frames']} frames ({len(result['adversarial'])} adversarial, {result['classifier_fooled']:.0%} of them "
          f"fool the classifier) -> {out / 'frames'}; labels -> {out / 'labels.json'}")


def main() -> None:
    """Console-script entry point."""
    app()
