"""The `trainer` command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from common.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train the classifier, the adversary detectors and run the paper's experiments.")


@app.callback()
def _root() -> None:
    """Keeps `fit` a subcommand even while it is the only one."""


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
    from trainer.checkpoint import CheckpointError
    from trainer.config import Config
    from trainer.data import DataError
    from trainer.run import fit as run_fit

    try:
        cfg = load_config(Config, config, list(overrides or []) + ([f"run_dir={run_dir}"] if run_dir else []))
        run_fit(cfg)
    except (ConfigError, DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        raise typer.Exit(130) from None


def main() -> None:
    """Console-script entry point."""
    app()
