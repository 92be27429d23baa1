"""`export onnx`, `export verify` and `export sign`.

`export` is a shell builtin in bash and zsh: there, run `python -m export ...`.
Errors are one line `error: ...` on stderr with exit code 2, never a traceback.
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer

from common.errors import reported
from common.metadata import PRECISIONS
from export.errors import ExportError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Export a trained classifier + adversary detector as one ONNX graph, and verify such files. "
         "In bash/zsh `export` is a shell builtin: use `python -m export ...`.",
)


Precision = enum.Enum("Precision", {p: p for p in PRECISIONS}, type=str)  # the contract's list, as choices


RUN_HELP = "Run directory written by `trainer` (classifier.pt, detectors/<NAME>/detector.pt)."
ATOL_HELP = "fp32: largest allowed |difference| of probs and p_adv between ONNX Runtime and PyTorch."
AUROC_HELP = "fp16/int8: largest allowed drop of the AUROC of p_adv (clean vs adversarial) below fp32."
AGREE_HELP = "fp16/int8: smallest allowed fraction of alert decisions equal to fp32's at the shipped threshold."


def _tolerances(atol: float, max_auroc_drop: float, min_agreement: float):
    from export.compare import Tolerances  # noqa: PLC0415 - imports torch

    if atol < 0 or max_auroc_drop < 0 or not 0 <= min_agreement <= 1:
        raise ExportError("--atol and --max-auroc-drop must be >= 0, --min-agreement within [0, 1]")
    return Tolerances(atol, max_auroc_drop, min_agreement)


@app.command("onnx")
def onnx_command(
    run: Path = typer.Option(..., "--run", help=RUN_HELP),
    detector: Optional[str] = typer.Option(
        None, "--detector", help="Detector to export (a name under RUN/detectors/); default: the run's only one."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output .onnx file; default RUN/export/<detector>.<precision>.onnx. "
                            "The manifest is written next to it as <file>.manifest.json."),
    precision: Precision = typer.Option(
        Precision.fp32, "--precision", help="fp32, fp16 (ONNX Runtime float16 conversion) or int8 "
                                            "(static QDQ quantisation calibrated on the run's images)."),
    atol: float = typer.Option(1e-4, "--atol", help=ATOL_HELP),
    max_auroc_drop: float = typer.Option(0.01, "--max-auroc-drop", help=AUROC_HELP),
    min_agreement: float = typer.Option(0.99, "--min-agreement", help=AGREE_HELP),
    force: bool = typer.Option(
        False, "--force", help="Write an fp16/int8 variant even if it fails --max-auroc-drop/--min-agreement "
                               "(never overrides fp32 parity)."),
) -> None:
    """Export RUN's classifier + detector as one fused graph, verify it against PyTorch, write it + manifest."""
    with reported():
        from export.pipeline import export_onnx  # noqa: PLC0415 - torch is slow to import; --help need not wait

        _, report = export_onnx(run, detector, out, precision.value,
                                _tolerances(atol, max_auroc_drop, min_agreement), force)
        for line in report:
            typer.echo(line)


@app.command("verify")
def verify_command(
    file: Path = typer.Argument(..., help="The .onnx file; its manifest <file>.manifest.json must lie next to it."),
    run: Optional[Path] = typer.Option(
        None, "--run", help=RUN_HELP + " Given: also compare with PyTorch on the run's held-out images."),
    detector: Optional[str] = typer.Option(
        None, "--detector", help="With --run: the detector to compare with; default: the one whose "
                                 "sha256 the model records."),
    atol: float = typer.Option(1e-4, "--atol", help=ATOL_HELP),
    max_auroc_drop: float = typer.Option(0.01, "--max-auroc-drop", help=AUROC_HELP),
    min_agreement: float = typer.Option(0.99, "--min-agreement", help=AGREE_HELP),
) -> None:
    """Check FILE: manifest sha256, onnx.checker, signature, metadata, a smoke run, and (with --run) PyTorch parity."""
    with reported():
        from export.verify import verify_file  # noqa: PLC0415

        tolerances = _tolerances(atol, max_auroc_drop, min_agreement) if run is not None else None
        for line in verify_file(file, run, detector, tolerances):
            typer.echo(line)
        typer.echo("ok")


@app.command("sign")
def sign_command(
    file: Path = typer.Argument(..., help="The .onnx file; its manifest <file>.manifest.json must lie next to it."),
    key: Path = typer.Option(..., "--key", help="Ed25519 private key, PEM (openssl genpkey -algorithm ed25519 -out KEY)."),
) -> None:
    """Sign FILE and its manifest with KEY: writes FILE.sig, which agents with `model.public_key` require."""
    with reported():
        from common.signing import sign_model  # noqa: PLC0415 - cryptography is only needed here

        path, key_id = sign_model(file, key)
        typer.echo(f"{path}: {file} and its manifest signed with key {key_id}")


def main() -> None:
    """Console-script entry point (`export = "export.cli:main"`)."""
    app()
