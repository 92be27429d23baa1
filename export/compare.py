"""Comparing an exported graph with the PyTorch model it came from, on the run's held-out images.

fp32 must match PyTorch to `atol` (parity). fp16 and int8 cannot, so they are judged on what
the deployment needs instead: AUROC of p_adv (clean vs adversarial) and agreement of the
alert decision with fp32 PyTorch at the shipped threshold. Quantisation noise is as large as
the perturbations the detector looks for, so both are gates, not just numbers in a log.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
import torch

from trainer.detect.evaluate import auroc
from trainer.rundir import EvalImages, Run

BATCH = 64  # images per inference call; bounds memory on large eval sets


@dataclass(frozen=True)
class Tolerances:
    """Pass criteria; defaults are the CLI's."""

    atol: float = 1e-4  # fp32: max |probs - torch| and |p_adv - torch|
    max_auroc_drop: float = 0.01  # fp16/int8: AUROC of p_adv may fall this much below fp32's
    min_agreement: float = 0.99  # fp16/int8: fraction of alert decisions equal to fp32's


@dataclass(frozen=True)
class Scores:
    """Outputs of one model on the clean and adversarial images."""

    probs_clean: np.ndarray
    probs_adv: np.ndarray
    p_clean: np.ndarray
    p_adv: np.ndarray


@dataclass
class Comparison:
    """An exported graph against fp32 PyTorch; `failures` empty means it may ship."""

    precision: str
    images: EvalImages
    threshold: float
    max_diff_probs: float
    max_diff_p_adv: float
    agreement: float  # alert decisions (p_adv > threshold) equal to PyTorch's, over clean + adversarial
    accuracy: tuple[float, float] | None  # (PyTorch, graph) top-1 on clean images, None without labels
    auroc: tuple[float, float]  # (PyTorch, graph), clean = negatives, adversarial = positives
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human-readable report."""
        n = len(self.images.clean)
        source = "synthetic random + noise images (run has no eval.pt)" if self.images.synthetic else \
            f"{n} held-out clean + {len(self.images.adversarial)} adversarial images"
        out = [f"{self.precision} vs PyTorch fp32 on {source}:",
               f"  max |probs diff| {self.max_diff_probs:.2e}   max |p_adv diff| {self.max_diff_p_adv:.2e}",
               f"  alert agreement at threshold {self.threshold:.4f}: {self.agreement:.2%}"]
        if self.accuracy is not None:
            out.append(f"  clean accuracy  PyTorch {self.accuracy[0]:.4f}   {self.precision} {self.accuracy[1]:.4f}")
        note = "   (not meaningful on synthetic images)" if self.images.synthetic else ""
        out.append(f"  AUROC of p_adv  PyTorch {self.auroc[0]:.4f}   {self.precision} {self.auroc[1]:.4f}{note}")
        out += [f"  FAIL: {failure}" for failure in self.failures]
        return out


def to_frames(images: np.ndarray) -> np.ndarray:
    """uint8 [N, C, H, W] RGB images -> uint8 [N, H, W, C] frames in OpenCV's channel order (BGR or grey)."""
    frames = images.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(frames[..., ::-1] if frames.shape[-1] == 3 else frames)


def session_outputs(session: ort.InferenceSession, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probs, p_adv) of an exported graph for uint8 RGB images [N, C, H, W]."""
    frames = to_frames(images)
    parts = [session.run(["probs", "p_adv"], {"frames": frames[i:i + BATCH]}) for i in range(0, len(frames), BATCH)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@torch.inference_mode()
def torch_outputs(run: Run, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probs, p_adv) of the PyTorch model for uint8 RGB images [N, C, H, W]."""
    probs, p_adv = [], []
    for i in range(0, len(images), BATCH):
        logits, adv_logit = run.model(torch.from_numpy(images[i:i + BATCH]).float())
        probs.append(torch.softmax(logits, 1).numpy())
        p_adv.append(torch.sigmoid(adv_logit).numpy())
    return np.concatenate(probs), np.concatenate(p_adv)


def reference_scores(run: Run) -> Scores:
    """fp32 PyTorch outputs on the run's images; computed once, shared by every comparison."""
    (pc, ac), (pa, aa) = torch_outputs(run, run.images.clean), torch_outputs(run, run.images.adversarial)
    return Scores(pc, pa, ac, aa)


def session_scores(session: ort.InferenceSession, images: EvalImages) -> Scores:
    """An exported graph's outputs on the run's images."""
    (pc, ac), (pa, aa) = session_outputs(session, images.clean), session_outputs(session, images.adversarial)
    return Scores(pc, pa, ac, aa)


def compare(session: ort.InferenceSession, run: Run, reference: Scores, precision: str,
            tolerances: Tolerances = Tolerances()) -> Comparison:
    """Run the graph on the run's images and judge it against the PyTorch `reference`."""
    graph = session_scores(session, run.images)
    return judge(precision, reference, graph, run.images, run.detector_ckpt.threshold, tolerances)


def judge(precision: str, reference: Scores, graph: Scores, images: EvalImages, threshold: float,
          tolerances: Tolerances = Tolerances()) -> Comparison:
    """Compare `graph`'s outputs with PyTorch's `reference` and apply the pass criteria for `precision`."""
    ref_p_adv = np.concatenate([reference.p_clean, reference.p_adv])
    graph_p_adv = np.concatenate([graph.p_clean, graph.p_adv])
    disagree = (graph_p_adv > threshold) != (ref_p_adv > threshold)
    accuracy = None
    if images.labels is not None:
        accuracy = (float((reference.probs_clean.argmax(1) == images.labels).mean()),
                    float((graph.probs_clean.argmax(1) == images.labels).mean()))
    result = Comparison(
        precision, images, threshold,
        max_diff_probs=float(max(np.abs(graph.probs_clean - reference.probs_clean).max(),
                                 np.abs(graph.probs_adv - reference.probs_adv).max())),
        max_diff_p_adv=float(np.abs(graph_p_adv - ref_p_adv).max()),
        agreement=float(1.0 - disagree.mean()),
        accuracy=accuracy,
        auroc=(auroc(reference.p_clean, reference.p_adv), auroc(graph.p_clean, graph.p_adv)),
    )
    result.failures = _failures(result, disagree, np.abs(ref_p_adv - threshold), tolerances)
    return result


def _failures(c: Comparison, disagree: np.ndarray, margin: np.ndarray, tol: Tolerances) -> list[str]:
    if c.precision == "fp32":
        out = []
        if max(c.max_diff_probs, c.max_diff_p_adv) > tol.atol:
            out.append(f"fp32 graph differs from PyTorch by {max(c.max_diff_probs, c.max_diff_p_adv):.2e} > atol {tol.atol:g}")
        # A p_adv within atol of the threshold may legitimately land on the other side.
        flipped = int((disagree & (margin > tol.atol)).sum())
        if flipped:
            out.append(f"{flipped} alert decisions differ from PyTorch away from the threshold")
        return out
    if c.images.synthetic:
        return [f"the run has no held-out images (detectors/<NAME>/eval.pt), so the detection quality "
                f"of the {c.precision} variant cannot be judged"]
    out = []
    drop = c.auroc[0] - c.auroc[1]
    if drop > tol.max_auroc_drop:
        out.append(f"AUROC of p_adv drops by {drop:.4f} > {tol.max_auroc_drop:g} ({c.auroc[0]:.4f} -> {c.auroc[1]:.4f})")
    if c.agreement < tol.min_agreement:
        out.append(f"alert decisions agree with fp32 on only {c.agreement:.2%} < {tol.min_agreement:.2%}")
    return out
