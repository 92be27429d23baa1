"""Familiarity at the detector's tap: calibrated on clean validation images, high on unlike inputs, same in ONNX."""
import numpy as np
import onnxruntime as ort
import torch
from detect.tiny_run import make_ctx

from export.graph import FusedGraph, to_onnx
from trainer import familiarity
from trainer.detect import attach
from trainer.detect.stage import ensure_familiarity
from trainer.familiarity import Unfamiliarity, fit, pooled_features

POINT = 2
EPS = 12  # on the tiny task's 16x16 frames, l_inf 12 attempts are mostly unfamiliar to a gate fitted on clean images


def fitted(ctx):
    d = ctx.dataset
    return fit(ctx.classifier, POINT, d.train.images, d.train.labels, d.val.images, 100, torch.device("cpu"))


def test_threshold_flags_the_calibrated_share_of_clean_validation_images(tiny_dataset, classifier_file, tmp_path):
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {})
    fam = fitted(ctx)
    n = fam["val_images"]
    assert fam["fpr"] - 1 / n <= fam["val_rate"] <= fam["fpr"]
    module = Unfamiliarity(fam["means"], fam["precision"])
    score = lambda x: module(pooled_features(ctx.classifier, POINT, x, 100, torch.device("cpu"),  # noqa: E731
                                             fam["cell"])[:, :, None, None].float())
    test_rate = (score(tiny_dataset.test.images) > fam["threshold"]).float().mean().item()
    assert test_rate < 0.1, "held-out clean images are familiar"
    # Unlike the training data: uniform noise, and the images turned negative.
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, tiny_dataset.test.images.shape, dtype=np.uint8))
    assert (score(noise) > fam["threshold"]).float().mean().item() > 0.9
    assert (score(255 - tiny_dataset.test.images) > fam["threshold"]).float().mean().item() > 0.9


def test_score_is_the_nearest_class_mahalanobis_distance(tiny_dataset, classifier_file, tmp_path):
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {})
    fam = fitted(ctx)
    feats = pooled_features(ctx.classifier, POINT, tiny_dataset.test.images[:20], 100, torch.device("cpu"), fam["cell"])
    assert fam["cell"] == [4, 4] and feats.shape[1] == 16 * 4 * 4, "AD(2) of ResNet-8: 16 maps of 16x16 in a 4x4 grid"
    means, precision = fam["means"].double(), fam["precision"].double()
    expected = torch.tensor([min(float((f - m) @ precision @ (f - m)) for m in means) for f in feats],
                            dtype=torch.float64)
    got = Unfamiliarity(fam["means"], fam["precision"])(feats[:, :, None, None].float()).double()
    assert torch.allclose(got, expected, rtol=1e-3)


def test_the_stage_stores_it_and_the_exported_graph_computes_it(tiny_dataset, classifier_file, tmp_path):
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [
        {"name": "d", "adversary": {"name": "iterative_linf", "eps": 8}, "point": POINT, "mode": "static",
         "epochs": 1, "train_limit": 64, "val_limit": 100, "test_limit": 32}]})
    spec = ctx.cfg.detectors[0]
    fam = ensure_familiarity(ctx, spec, "0" * 64)
    assert (tmp_path / "detectors" / "d" / "familiarity.pt").is_file()
    assert ensure_familiarity(ctx, spec, "0" * 64)["threshold"] == fam["threshold"], "loaded, not refitted"
    model = attach(ctx, spec)
    graph = FusedGraph(model, Unfamiliarity(fam["means"], fam["precision"], fam["cell"]))
    proto = to_onnx(graph, (16, 16, 1), ["probs", "p_adv", "unfamiliarity"])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    frames = tiny_dataset.test.images[:8].permute(0, 2, 3, 1).contiguous()
    probs, p_adv, unfamiliarity = session.run(None, {"frames": frames.numpy()})
    with torch.no_grad():
        expected = graph(frames)[2].numpy()
    np.testing.assert_allclose(unfamiliarity, expected, rtol=1e-4, atol=1e-3)
    assert probs.shape == (8, 10) and p_adv.shape == (8,)


def test_fitted_on_the_attempts_too_the_gate_no_longer_hides_large_perturbations(tiny_dataset, classifier_file, tmp_path):
    """Fitted on clean images alone, the gate calls most l_inf 32 attempts unfamiliar, so the agent never judges
    them; fitted on the detector's training twins as well, it lets them through to the alarm."""
    from trainer.attacks import AttackSpec, run_attack

    spec = {"adversary": {"name": "pgd", "eps": EPS, "steps": 5, "restarts": 1}, "point": POINT, "mode": "static",
            "twins": "one", "positives": [{"name": "pgd", "eps": EPS // 2, "steps": 5, "restarts": 1}],
            "epochs": 1, "train_limit": 400, "val_limit": 100, "test_limit": 32}
    ctx = make_ctx(tmp_path, classifier_file, tiny_dataset, {"detectors": [
        {"name": "clean", **spec}, {"name": "attempts", "familiar_attempts": True, **spec}]})
    x, y = tiny_dataset.test.images, tiny_dataset.test.labels
    attempts = run_attack(AttackSpec(name="pgd", eps=EPS, steps=10, restarts=1), ctx.classifier, x, y, batch_size=200,
                          progress=False).round().clamp(0, 255)
    hidden = {}
    for s in ctx.cfg.detectors:
        gate = familiarity.Gate(ctx.classifier, ensure_familiarity(ctx, s, "0" * 64))
        hidden[s.name] = gate(attempts).float().mean().item()
        assert gate(x).float().mean().item() < 0.1, "held-out clean images stay familiar"
    assert hidden["attempts"] < hidden["clean"] - 0.3, hidden
