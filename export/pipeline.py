"""`export onnx`: run directory -> verified `.onnx` file + manifest, or nothing that looks valid.

Order matters: the graph is written to a temp file, verified from disk (the bytes that will
ship), only then renamed into place, and the manifest is written last. A crash or a failed
check leaves no file the agent would accept: without a manifest it refuses the model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.files import atomic_path
from common.manifest import manifest_path, write_manifest
from common.metadata import PRECISIONS
from common.robustness import describe as describe_robustness
from export import metadata
from export.compare import Tolerances, compare, reference_scores, to_frames
from export.errors import ExportError
from export.graph import FusedGraph, to_onnx
from trainer.rundir import load_run
from export.variants import convert
from export.verify import check_file, open_session
from trainer.familiarity import Unfamiliarity


def default_out(run_dir: str | Path, detector: str, precision: str) -> Path:
    """RUN/export/<detector>.<precision>.onnx"""
    return Path(run_dir) / "export" / f"{detector}.{precision}.onnx"


def export_onnx(run_dir: str | Path, detector: str | None = None, out: str | Path | None = None,
                precision: str = "fp32", tolerances: Tolerances = Tolerances(), force: bool = False
                ) -> tuple[Path, list[str]]:
    """Export, verify and write the model; returns (path, report lines). `ExportError` on any failure.

    `force` ships an fp16/int8 variant that fails its quality gates (the report says so);
    it never overrides fp32 parity, which failing means the export itself is wrong.
    """
    if precision not in PRECISIONS:
        raise ExportError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    run = load_run(run_dir, detector)
    meta = metadata.build(run, precision)  # before the slow part: a checkpoint lacking a field fails now
    out = Path(out) if out is not None else default_out(run_dir, run.detector_name, precision)
    report = [f"run {run.dir}, detector {run.detector_name} at AD({run.detector_ckpt.point}), "
              f"input {'x'.join(map(str, run.input_shape))}", f"robustness: {describe_robustness(meta.to_props())}"]

    familiarity, outputs = None, ["probs", "p_adv"]
    if run.familiarity is not None:
        fam = run.familiarity
        familiarity, outputs = Unfamiliarity(fam["means"], fam["precision"], fam["cell"]), outputs + ["unfamiliarity"]
        report.append(f"familiarity: Mahalanobis score at AD({run.familiarity['point']}), threshold "
                      f"{run.familiarity['threshold']:.4g} ({run.familiarity['fpr']:.0%} of clean validation images above)")
    fp32 = to_onnx(FusedGraph(run.model, familiarity, run.familiarity and run.familiarity["point"]), run.input_shape, outputs)
    reference = reference_scores(run)
    model = fp32
    if precision != "fp32":
        # Judge the fp32 base first, so a variant's loss is the precision's and not an export bug.
        base = compare(open_session(fp32.SerializeToString()), run, reference, "fp32", tolerances)
        report += base.lines()
        if base.failures:
            raise ExportError("fp32 parity failed: " + "; ".join(base.failures), report)
        frames = to_frames(np.concatenate([run.images.clean, run.images.adversarial]))
        model = convert(fp32, precision, frames)
    metadata.attach(model, meta)

    with atomic_path(out) as tmp:  # renamed into place only if every check below passes
        tmp.write_bytes(model.SerializeToString())
        _, session = check_file(tmp)
        result = compare(session, run, reference, precision, tolerances)
        report += result.lines()
        if result.failures and (precision == "fp32" or not force):
            hint = "" if precision == "fp32" else " (--force ships it anyway)"
            raise ExportError(f"{precision} export failed verification: {'; '.join(result.failures)}{hint}", report)
        if result.failures:
            report.append(f"WARNING: shipping the {precision} variant despite failed checks (--force)")
        # The old manifest goes first: between the rename and the new manifest, the agent sees
        # a model without a manifest (refused), never a new model with a stale manifest.
        manifest_path(out).unlink(missing_ok=True)
    write_manifest(out, meta.to_props())
    report.append(f"wrote {out} and {manifest_path(out).name}")
    return out, report
