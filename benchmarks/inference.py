"""Inference speed of the deployable graph on this machine, side by side in one run.

For a ResNet-32 with a detector at AD(2) and at AD(4) (random weights, or a trained run with --run):
  fused      the exported graph: trunk once, both heads          (what `export onnx` ships)
  separate   classifier and detector as two ONNX sessions, each computing the trunk (a naive deployment)
  eager      the same model in eager PyTorch (uint8 frames in, as the graph)
  int8       the fused graph after static QDQ quantisation
Batch-1 latency p50/p99 (ms per frame) and batch-32 throughput (frames/s). Measurements are
interleaved round-robin so that load from other processes hits every variant alike.

    python benchmarks/inference.py                      # random ResNet-32, AD(2) and AD(4)
    python benchmarks/inference.py --arch imagenet      # the same with Sec. 4.2's detector
    python benchmarks/inference.py --run runs/cifar     # a trained run's classifier + detector
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from export.compare import session_outputs
from trainer.detect.evaluate import auroc
from export.graph import FramesToImages, FusedGraph, to_onnx
from trainer.rundir import load_run
from export.variants import to_int8
from trainer.models import DetectedClassifier, ResNet
from trainer.models.detector import ARCHS


class ClassifierOnly(nn.Module):
    """Frames -> probs with the whole classifier: one of the two sessions of a naive deployment."""

    def __init__(self, model: DetectedClassifier):
        super().__init__()
        self.pre, self.classifier = FramesToImages(model.classifier.tap_channels[0]), model.classifier

    def forward(self, frames):
        return torch.softmax(self.classifier(self.pre(frames)), dim=1)


class DetectorOnly(nn.Module):
    """Frames -> p_adv, recomputing the trunk up to the attachment point: the other session."""

    def __init__(self, model: DetectedClassifier):
        super().__init__()
        self.pre, self.model = FramesToImages(model.classifier.tap_channels[0]), model

    def forward(self, frames):
        return torch.sigmoid(self.model.detector_logit(self.pre(frames)))


def random_model(depth: int, point: int, arch: str = "fig1", seed: int = 0) -> DetectedClassifier:
    """ResNet-`depth` + `arch` detector at AD(`point`) with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    classifier = ResNet(depth, 3, 10)
    model = DetectedClassifier.build(classifier, arch, point)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def runners(model: DetectedClassifier, shape: tuple[int, int, int], calib: np.ndarray, threads: int) -> dict:
    """name -> function(frames) for every variant of one model."""
    fused_proto = to_onnx(FusedGraph(model), shape, ["probs", "p_adv"])
    fused = session(fused_proto.SerializeToString(), threads)
    cls = session(to_onnx(ClassifierOnly(model), shape, ["probs"]).SerializeToString(), threads)
    det = session(to_onnx(DetectorOnly(model), shape, ["p_adv"]).SerializeToString(), threads)
    int8 = session(to_int8(fused_proto, calib).SerializeToString(), threads)
    eager = FusedGraph(model).eval()

    def torch_run(frames):
        with torch.inference_mode():
            return eager(torch.from_numpy(frames))

    return {
        "fused": lambda f: fused.run(None, {"frames": f}),
        "separate": lambda f: (cls.run(None, {"frames": f}), det.run(None, {"frames": f})),
        "eager": torch_run,
        "int8": lambda f: int8.run(None, {"frames": f}),
    }, fused, int8


def measure(fns: dict, shape, iters: int, chunk: int, batch: int) -> dict:
    """Per variant: batch-1 latencies (ms) and batch-`batch` throughput (frames/s).

    Round-robin in chunks of `chunk` calls, so a burst of load from other processes lands on
    every variant alike instead of on whichever happened to be running.
    """
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *shape), dtype=np.uint8)
    many = rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
    lat = {name: [] for name in fns}
    busy = {name: 0.0 for name in fns}
    for fn in fns.values():  # warm-up: ORT allocates and picks kernels on the first calls
        for _ in range(10):
            fn(one)
        fn(many)
    rounds = max(1, iters // chunk)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(chunk):
                t = time.perf_counter()
                fn(one)
                lat[name].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            fn(many)
            busy[name] += time.perf_counter() - t
    return {name: (np.percentile(lat[name], 50), np.percentile(lat[name], 99), rounds * batch / busy[name])
            for name in fns}


def quality(fused: ort.InferenceSession, int8: ort.InferenceSession, clean: np.ndarray, adversarial: np.ndarray,
            threshold: float | None) -> str:
    """AUROC of p_adv for fp32 and int8, and their alert agreement (clean/adversarial are uint8 NCHW RGB)."""
    (_, c32), (_, a32) = session_outputs(fused, clean), session_outputs(fused, adversarial)
    (_, c8), (_, a8) = session_outputs(int8, clean), session_outputs(int8, adversarial)
    p32, p8 = np.concatenate([c32, a32]), np.concatenate([c8, a8])
    threshold = float(np.median(c32)) if threshold is None else threshold
    return (f"AUROC fp32 {auroc(c32, a32):.4f} int8 {auroc(c8, a8):.4f}, alert agreement "
            f"{np.mean((p32 > threshold) == (p8 > threshold)):.2%} at {threshold:.4f}, max |p_adv diff| {np.abs(p32 - p8).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="trained run directory (default: random ResNet-32 at 32x32x3)")
    parser.add_argument("--detector", help="with --run: which detector (default: the only one)")
    parser.add_argument("--depth", type=int, default=32, help="ResNet depth without --run")
    parser.add_argument("--points", type=int, nargs="+", default=[2, 4], help="attachment points without --run")
    parser.add_argument("--arch", choices=list(ARCHS), default="fig1",
                        help="detector network without --run: Fig. 1's or Sec. 4.2's")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for ORT and PyTorch")
    parser.add_argument("--iters", type=int, default=200, help="batch-1 calls per variant")
    parser.add_argument("--chunk", type=int, default=10, help="batch-1 calls per variant before moving to the next")
    parser.add_argument("--batch", type=int, default=32, help="batch size for the throughput column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(1)
    if args.run:
        run = load_run(args.run, args.detector)
        cases = [(f"{run.dir.name}/{run.detector_name}", run.model, run.input_shape, run.images.clean,
                  run.images.adversarial, run.detector_ckpt.threshold, "the run's held-out images")]
    else:
        shape = (32, 32, 3)
        clean = rng.integers(0, 256, (128, 3, 32, 32), dtype=np.int16)
        adversarial = np.clip(clean + 2 * rng.choice([-1, 1], clean.shape), 0, 255).astype(np.uint8)
        cases = [(f"ResNet-{args.depth} {args.arch}", random_model(args.depth, p, args.arch), shape, clean.astype(np.uint8), adversarial, None,
                  "random images +-2 noise, random weights: AUROC not meaningful")
                 for p in args.points]

    load = os.getloadavg()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.2f}; "
          f"onnxruntime {ort.__version__}, torch {torch.__version__}, {args.threads} threads")
    print(f"{'model':<20} {'variant':<9} {'b1 p50 ms':>10} {'b1 p99 ms':>10} {f'b{args.batch} fr/s':>10} "
          f"{'p50 vs eager':>13} {'p50 vs separate':>16}")
    notes = []
    for label, model, shape, clean, adversarial, threshold, source in cases:
        calib = np.ascontiguousarray(np.concatenate([clean, adversarial]).transpose(0, 2, 3, 1)[..., ::-1])
        fns, fused, int8 = runners(model, shape, calib[:256], args.threads)
        stats = measure(fns, shape, args.iters, args.chunk, args.batch)
        name = f"{label} AD({model.point})"
        for variant, (p50, p99, tput) in stats.items():
            print(f"{name:<20} {variant:<9} {p50:>10.3f} {p99:>10.3f} {tput:>10.0f} "
                  f"{stats['eager'][0] / p50:>12.2f}x {stats['separate'][0] / p50:>15.2f}x")
        notes.append(f"{name}: int8 vs fp32 on {source}: {quality(fused, int8, clean, adversarial, threshold)}")
    print("\n".join(notes))
    print(f"# load average at the end {os.getloadavg()[0]:.2f} (2 cores: above ~2 means other processes competed)")


if __name__ == "__main__":
    main()
