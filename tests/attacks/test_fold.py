import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks import AttackSpec, deepfool, dynamic, registry, run_attack
from trainer.attacks._ops import input_grad
from trainer.models import DetectedClassifier, Detector, ResNet
from trainer.models.fold import folded


def _trained_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as after training."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5), nn.init.uniform_(m.bias, -0.5, 0.5)
    return model


def test_folded_copy_computes_the_same_function_and_gradients_without_batchnorm():
    model = _trained_bn(ResNet(8))
    net, = folded(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    x = (torch.rand(4, 3, 32, 32) * 255).requires_grad_(True)
    z_ref = model.eval()(x)
    z = net(x)
    # Folding reorders float32 sums only: agreement to ~1e3 float32 ulps of the largest value (observed ~1e1).
    assert torch.allclose(z, z_ref, atol=1e-4 * z_ref.abs().max().item())
    g_ref, = torch.autograd.grad(z_ref[:, 3].sum(), x)
    g, = torch.autograd.grad(z[:, 3].sum(), x)
    assert torch.allclose(g, g_ref, atol=1e-4 * g_ref.abs().max().item())


def test_models_folded_together_share_what_the_originals_share():
    classifier = _trained_bn(ResNet(8))
    net, detected = folded(classifier, DetectedClassifier(classifier, Detector(16), 2))
    assert detected.classifier is net and net is not classifier


def test_folding_leaves_the_original_model_alone():
    model = _trained_bn(ResNet(8)).train()
    folded(model)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0


def test_run_attack_with_a_detector_differentiates_a_folded_copy_of_the_same_detector():
    classifier = _trained_bn(ResNet(8)).eval()
    model = DetectedClassifier(classifier, _trained_bn(Detector(16)), 2).eval()
    x, y = torch.rand(6, 3, 32, 32) * 255, torch.arange(6)
    # sigma 1: only the detector's gradient moves x. One step: a sign that rounding flips would
    # send later steps elsewhere, so more steps would compare trajectories, not gradients.
    spec = AttackSpec(name="dynamic", eps=4, alpha=1, sigma=1.0, steps=1)
    expected = dynamic(classifier, model.detector_logit, x, y, eps=4, alpha=1, sigma=1.0, steps=1)
    adv = run_attack(spec, classifier, x, y, model.detector_logit)
    g = input_grad(lambda xn: F.softplus(-model.detector_logit(xn)), x)
    # Signs must agree wherever the gradient exceeds the folding's rounding (the tolerance asserted above).
    clear = g.abs() > 1e-4 * g.abs().max()
    assert clear.float().mean() > 0.9 and torch.equal(adv[clear], expected[clear])
    assert model.detector.training is False and all(p.requires_grad for p in model.detector.parameters())


def test_deepfool_results_fool_the_callers_model_not_only_the_folded_copy(classifier, data, monkeypatch):
    x, _ = data
    with torch.no_grad():
        y = classifier(x).argmax(1)

    def shifted(*models: nn.Module) -> tuple[nn.Module, ...]:  # copies whose boundaries differ more than rounding does
        nets = folded(*models)
        nets[0].head[-1].bias.data += 0.3 * torch.randn(10, generator=torch.Generator().manual_seed(0))
        return nets

    monkeypatch.setattr(registry, "folded", shifted)
    with torch.no_grad():
        assert (classifier(deepfool(shifted(classifier)[0], x, y)).argmax(1) == y).any()  # the case being handled
        assert (classifier(run_attack(AttackSpec(name="deepfool_l2"), classifier, x, y)).argmax(1) != y).all()
