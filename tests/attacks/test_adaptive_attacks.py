"""Detector-aware attacks on a trained classifier + detector: strength, budgets, and gradient-masking sanity checks (#11)."""
from __future__ import annotations

import math

import pytest
import torch

from trainer.attacks import AttackSpec, adaptive, cw_detector_logit, orthogonal_pgd, run_attack, selective_pgd
from trainer.attacks.cw import undetected_margin

THRESHOLD = 0.3  # not 1/2, so the detector's logit is compared with a non-zero logit(threshold)
EPS, ALPHA, STEPS = 6.0, 0.5, 20  # a budget where the adaptive attack succeeds on about half the images
ATTACKS = {"selective_pgd": selective_pgd, "orthogonal_pgd": orthogonal_pgd, "cw_detector_logit": cw_detector_logit}


def undetected(classifier, detected, x_adv, y) -> torch.Tensor:
    """[N] bool: the rounded frame is misclassified AND p_adv < THRESHOLD."""
    frame = x_adv.round()
    with torch.no_grad():
        return (classifier(frame).argmax(1) != y) & (torch.sigmoid(detected.detector_logit(frame)) < THRESHOLD)


def run(attack, classifier, detected, x, y, eps=EPS, steps=STEPS, **params):
    with torch.random.fork_rng():  # the same random start each call, and other tests' draws left alone
        torch.manual_seed(0)
        return attack(classifier, detected.detector_logit, x, y, eps, THRESHOLD, steps=steps, restarts=1, **params)


@pytest.fixture(scope="module")
def results(classifier, detected, data):
    """Each attack's images at EPS and whether they succeed: {name: (x_adv, undetected [N])}."""
    x, y = data
    out = {}
    for name, attack in {"adaptive": adaptive, **ATTACKS}.items():
        x_adv = run(attack, classifier, detected, x, y, alpha=ALPHA)
        out[name] = x_adv, undetected(classifier, detected, x_adv, y)
    return out


def test_undetected_margin_is_positive_exactly_when_misclassified_and_undetected():
    z = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.0], [1.0, 3.0, 0.0], [-5.0, -2.0, -9.0]])
    d, y, t = torch.tensor([0.0, 0.5, -0.5, -3.0]), torch.tensor([0, 0, 0, 0]), 0.0
    margin = undetected_margin(z, d, y, t)
    # correct; fooled but detected; fooled and undetected; negative logits, fooled and undetected
    assert margin.tolist() == pytest.approx([-1.0, -0.5, 0.5, 3.0])


@pytest.mark.parametrize("name", ATTACKS)
def test_is_at_least_as_strong_as_the_hinge_attack_and_stays_in_budget(results, data, name):
    x, _ = data
    x_adv, fooled = results[name]
    assert x_adv.min() >= 0 and x_adv.max() <= 255
    assert (x_adv - x).abs().amax() <= EPS + 1e-4
    base = results["adaptive"][1]
    assert 0.2 < base.float().mean() < 0.95  # a budget that tells attacks apart
    # Paired sign test: if both were equally strong, the images only one attack fools would split
    # evenly; the hinge attack may win at most 2 standard deviations (sqrt of discordant count) more.
    only_base, only_attack = (base & ~fooled).sum().item(), (fooled & ~base).sum().item()
    assert only_base - only_attack <= 2 * math.sqrt(only_base + only_attack) + 1


@pytest.mark.parametrize("name", ATTACKS)
def test_more_steps_keep_every_success(classifier, detected, data, results, name):
    """With the same seed and step size, a longer run repeats the shorter one's iterates and keeps its best."""
    x, y = data
    short = undetected(classifier, detected, run(ATTACKS[name], classifier, detected, x, y, steps=STEPS // 3,
                                                 alpha=ALPHA), y)
    assert not (short & ~results[name][1]).any()


@pytest.mark.parametrize("name", ATTACKS)
def test_an_unbounded_budget_fools_both_on_every_image(classifier, detected, data, results, name):
    x, y = data
    huge = undetected(classifier, detected, run(ATTACKS[name], classifier, detected, x, y, eps=128.0, steps=10), y)
    assert huge.float().mean() >= max(results[name][1].float().mean(), 1 - 2 / len(y))


def test_run_attack_passes_the_detector_and_the_threshold(classifier, detected, data):
    x, y = data
    spec = AttackSpec(name="selective_pgd", eps=EPS, threshold=THRESHOLD, steps=5, restarts=2, alpha=ALPHA)
    x_adv = run_attack(spec, classifier, x[:16].to(torch.uint8), y[:16], detector_logit=detected.detector_logit,
                       batch_size=8)
    assert x_adv.dtype == torch.float32 and (x_adv - x[:16]).abs().amax() <= EPS + 1e-4
    with pytest.raises(ValueError, match="detector_logit"):
        run_attack(spec, classifier, x, y)
