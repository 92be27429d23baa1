"""Attacks of the security evaluation (#11) on a trained classifier + detector: strength, budgets, and
sanity checks against gradient masking."""
from __future__ import annotations

import math

import pytest
import torch

from trainer.attacks import (
    AttackSpec, adaptive, carlini_wagner_l2, cw_detector_logit, orthogonal_pgd, patch, patch_adaptive, run_attack,
    selective_pgd, square_adaptive,
)
from trainer.attacks.cw import undetected_margin

THRESHOLD = 0.3  # not 1/2, so the detector's logit is compared with a non-zero logit(threshold)
EPS, ALPHA, STEPS = 6.0, 0.5, 20  # a budget where the adaptive attack succeeds on about half the images
ATTACKS = {"selective_pgd": selective_pgd, "orthogonal_pgd": orthogonal_pgd, "cw_detector_logit": cw_detector_logit}


def undetected(classifier, detected, x_adv, y) -> torch.Tensor:
    """[N] bool: the rounded frame is misclassified AND p_adv < THRESHOLD."""
    frame = x_adv.round()
    with torch.no_grad():
        return (classifier(frame).argmax(1) != y) & (torch.sigmoid(detected.detector_logit(frame)) < THRESHOLD)


def assert_not_stronger(fooled_a: torch.Tensor, fooled_b: torch.Tensor) -> None:
    """Paired sign test: if a and b were equally strong, the images only one of them fools would split
    evenly; a may fool at most 2 standard deviations (sqrt of the discordant count) more than b."""
    only_a, only_b = (fooled_a & ~fooled_b).sum().item(), (fooled_b & ~fooled_a).sum().item()
    assert only_a - only_b <= 2 * math.sqrt(only_a + only_b) + 1


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
    assert_not_stronger(base, fooled)


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


def test_gradient_free_square_attack_does_not_beat_the_white_box_attacks(classifier, detected, data, results):
    """If it did, the gradients the white-box attacks follow would be masked (Tramer et al. 2020)."""
    x, y = data
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x_adv = square_adaptive(classifier, detected.detector_logit, x, y, EPS, THRESHOLD, queries=100)
    assert (x_adv - x).abs().amax() <= EPS + 1e-4
    white_box = results["selective_pgd"][1] | results["orthogonal_pgd"][1]
    assert_not_stronger(undetected(classifier, detected, x_adv, y), white_box)


def test_carlini_wagner_l2_fools_every_image_with_a_loose_budget(classifier, data):
    x, y = data[0][:16], data[1][:16]
    x_adv = carlini_wagner_l2(classifier, x, y, steps=30, binary_steps=2, c=1.0, lr=0.05)
    assert x_adv.min() >= 0 and x_adv.max() <= 255
    with torch.no_grad():
        fooled = classifier(x_adv.round()).argmax(1) != y
    assert fooled.float().mean() >= 1 - 1 / len(y)
    assert torch.equal(x_adv[~fooled], x[~fooled])  # no adversarial found: the image itself


@pytest.mark.parametrize("adaptive_loss", [False, True])
def test_patch_changes_only_a_square_of_the_given_area(classifier, detected, data, adaptive_loss):
    x, y = data[0][:16], data[1][:16]
    area, side = 0.14, 3  # 0.14 of an 8 x 8 frame: round(sqrt(8.96)) = 3
    x_adv = (patch_adaptive(classifier, detected.detector_logit, x, y, THRESHOLD, area=area, steps=5, restarts=2)
             if adaptive_loss else patch(classifier, x, y, area=area, steps=5, restarts=2))
    assert x_adv.min() >= 0 and x_adv.max() <= 255
    changed = (x_adv != x).any(1)  # [N, H, W]
    for mask in changed:
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert rows.max() - rows.min() < side and cols.max() - cols.min() < side
        assert mask.sum() >= side * side // 2  # random content: most of the sticker differs from x
