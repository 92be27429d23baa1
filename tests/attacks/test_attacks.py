"""Budgets, closed forms and relative strengths of the adversaries (Sec. 3.1, 3.3) and the adaptive attack."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trainer.attacks import (
    AttackSpec, adaptive, attack_key, cached_attack, cw_detector_logit, deepfool, dynamic, fast, iterative_l2,
    iterative_linf, orthogonal_pgd, pgd, run_attack, selective_pgd, square, square_adaptive, success_report,
)
from trainer.attacks import cache as cache_module

# --- budgets and pixel range, over random inputs and budgets -------------------------------------------------

torch.manual_seed(0)
# Untrained but non-trivial: BN (kept in train mode to check the attacks switch to eval) and inplace ReLU.
NET = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                    nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))
DET = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1),
                    nn.Flatten(0))


def random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with saturated pixels (0 and 255) so that clipping to [0, 255] is exercised."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(4, 3, 6, 6, generator=g) * 400 - 70).clamp(0, 255)
    return x, torch.randint(0, 5, (4,), generator=g)


# float32 images in 0..255: x + delta rounds to within a few ulps of 255, whatever delta was.
ATOL = 4 * 255 * 2**-23


def linf(a, b):
    return (a - b).flatten(1).abs().amax(1)


def l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


def assert_valid(x_adv, x):
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert x_adv.min() >= 0 and x_adv.max() <= 255 and torch.isfinite(x_adv).all()


DETECTOR_AWARE = (selective_pgd, orthogonal_pgd, cw_detector_logit)
SEEDS = st.integers(0, 2**16)
FEW = settings(max_examples=12, deadline=None)  # tiny models, but the whole file must stay well under a minute


@FEW
@given(SEEDS, st.floats(0.1, 32))
def test_linf_attacks_stay_in_the_box(seed, eps):
    x, y = random_batch(seed)
    for x_adv in (fast(NET, x, y, eps), iterative_linf(NET, x, y, eps, alpha=eps / 4, steps=6),
                  dynamic(NET, DET, x, y, eps, sigma=0.5, alpha=eps / 4),
                  adaptive(NET, DET, x, y, eps, threshold=0.5, steps=4, restarts=2),
                  *(attack(NET, DET, x, y, eps, threshold=0.3, steps=3, restarts=2) for attack in DETECTOR_AWARE),
                  pgd(NET, x, y, eps, steps=3, restarts=2), square(NET, x, y, eps, queries=5),
                  square_adaptive(NET, DET, x, y, eps, threshold=0.3, queries=5)):
        assert_valid(x_adv, x)
        assert (linf(x_adv, x) <= eps + ATOL).all()


@FEW
@given(SEEDS, st.floats(1, 400))
def test_l2_attacks_stay_in_the_ball(seed, eps):
    x, y = random_batch(seed)
    for x_adv in (iterative_l2(NET, x, y, eps, alpha=eps / 3, steps=5),
                  adaptive(NET, DET, x, y, eps, threshold=0.5, norm="l2", steps=4, restarts=2),
                  *(attack(NET, DET, x, y, eps, threshold=0.3, norm="l2", steps=3, restarts=2)
                    for attack in DETECTOR_AWARE),
                  pgd(NET, x, y, eps, norm="l2", steps=3, restarts=2)):
        assert_valid(x_adv, x)
        assert (l2(x_adv, x) <= eps * (1 + 1e-6) + ATOL).all()


@FEW
@given(SEEDS, st.sampled_from(["l2", "linf"]), st.floats(0.5, 16))
def test_deepfool_stays_valid_and_under_its_cap(seed, norm, cap):
    x, y = random_batch(seed)
    assert_valid(deepfool(NET, x, y, norm, max_iter=5), x)
    capped = deepfool(NET, x, y, norm, max_iter=5, linf_cap=cap)
    assert_valid(capped, x)
    assert (linf(capped, x) <= cap + ATOL).all()


def test_attacks_use_eval_mode_restore_it_and_leave_parameters_alone():
    x, y = random_batch(0)
    NET.train()
    stats = NET[1].running_mean.clone()
    fast(NET, x, y, 4)
    deepfool(NET, x, y, max_iter=3)
    dynamic(NET, DET, x, y, 2, sigma=0.5)
    assert NET.training and NET[1].training and DET.training
    assert torch.equal(NET[1].running_mean, stats)
    assert all(p.grad is None for p in [*NET.parameters(), *DET.parameters()])


def test_attacks_run_under_no_grad():
    x, y = random_batch(1)
    with torch.no_grad():
        assert not torch.equal(iterative_linf(NET, x, y, 4), x)


# --- closed forms on linear / affine models ----------------------------------------------------------------


def affine(k: int = 4, d: tuple = (1, 4, 4), seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(d).prod()), k))
    model.requires_grad_(False)
    return model


def test_fast_equals_its_closed_form_on_a_linear_model():
    model = affine()
    W, b = model[1].weight, model[1].bias
    x = torch.rand(8, 1, 4, 4) * 255
    y = torch.randint(0, 4, (8,))
    # grad_x CE(Wx + b, y) = W^T (softmax(Wx + b) - onehot(y))
    p = torch.softmax(x.flatten(1) @ W.T + b, 1)
    grad = ((p - F.one_hot(y, 4)) @ W).view_as(x)
    assert torch.equal(fast(model, x, y, 3.0), (x + 3.0 * grad.sign()).clamp(0, 255))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_finds_the_minimal_perturbation_of_an_affine_classifier(norm):
    """For f = Wx + b the closest point of another class lies at min_k |f_k - f_y| / ||w_k - w_y||_q."""
    model = affine(seed=1)
    W, b = model[1].weight.double(), model[1].bias.double()
    x = 100 + torch.rand(16, 1, 4, 4) * 50  # far enough from 0 and 255 that clipping is not involved
    y = (x.flatten(1).double() @ W.T + b).argmax(1)
    x_adv = deepfool(model, x, y, norm, overshoot=0.02)

    f = x.flatten(1).double() @ W.T + b
    f = f - f.gather(1, y[:, None])
    w = W[None] - W[y][:, None]  # [n, K, D]
    dist = f.abs() / w.norm(p=2 if norm == "l2" else 1, dim=2)
    dist.scatter_(1, y[:, None], torch.inf)
    d_min, k = dist.min(1)
    w_k = w[torch.arange(16), k]
    unit = w_k / w_k.norm(dim=1, keepdim=True) if norm == "l2" else w_k.sign()
    expected = 1.02 * d_min[:, None] * unit
    torch.testing.assert_close((x_adv - x).flatten(1).double(), expected, rtol=1e-4, atol=1e-3)
    assert (model(x_adv).argmax(1) != y).all()


# --- relative strength on a trained model -------------------------------------------------------------------


@pytest.mark.parametrize("eps", [4.0, 8.0])
def test_iterative_is_at_least_as_strong_as_fast(classifier, data, eps):
    x, y = data
    fast_rate = success_report(classifier, x, fast(classifier, x, y, eps), y)["success"]
    iter_rate = success_report(classifier, x, iterative_linf(classifier, x, y, eps), y)["success"]
    assert iter_rate >= fast_rate and iter_rate > 0


def test_deepfool_is_smaller_than_iterative_at_equal_success(classifier, data):
    x, y = data
    df = success_report(classifier, x, deepfool(classifier, x, y, "l2"), y)
    assert df["success"] >= 0.95
    for eps in (40, 60, 80, 100, 150, 200, 300):  # the smallest iterative budget reaching DeepFool's success
        it = success_report(classifier, x, iterative_l2(classifier, x, y, eps, alpha=eps / 5), y)
        if it["success"] >= df["success"]:
            break
    assert it["success"] >= df["success"]
    assert df["median_l2"] < it["median_l2"]


def test_dynamic_with_sigma_zero_is_the_iterative_method(classifier, detected, data):
    x, y = data
    assert torch.equal(dynamic(classifier, detected.detector_logit, x, y, eps=2, sigma=0.0, alpha=0.25, steps=12),
                       iterative_linf(classifier, x, y, eps=2, alpha=0.25, steps=12))


def test_adaptive_attack_evades_a_trained_detector_while_misclassifying(classifier, detected, data):
    x, y = data
    threshold, eps = 0.5, 8.0

    def p_adv(x_adv):
        with torch.no_grad():
            return torch.sigmoid(detected.detector_logit(x_adv))

    static = iterative_linf(classifier, x, y, eps, alpha=2, steps=5)  # what the detector was trained on
    assert p_adv(static).mean() > 0.8 and p_adv(x).mean() < 0.2  # the detector works against it
    x_adv = adaptive(classifier, detected.detector_logit, x, y, eps, threshold, steps=30, restarts=2)
    assert (linf(x_adv, x) <= eps + ATOL).all()
    fooled = classifier(x_adv).argmax(1) != y
    both = fooled & (p_adv(x_adv) < threshold)
    assert both.float().mean() >= 0.8
    assert p_adv(x_adv).mean() < p_adv(static).mean() - 0.5


# --- registry, batching, cache, report ----------------------------------------------------------------------


def test_spec_names_attacks_and_checks_their_parameters():
    spec = AttackSpec.model_validate({"name": "iterative_l2", "eps": 40})
    assert attack_key(spec) == "iterative_l2-eps40"
    assert attack_key(AttackSpec(name="dynamic", eps=1, sigma=0.3)) == "dynamic-eps1-sigma0.3"
    for bad in ({"name": "fgsm", "eps": 1}, {"name": "fast"}, {"name": "deepfool_l2", "eps": 1},
                {"name": "fast", "eps": 1, "bogus": 2}):
        with pytest.raises(ValueError):
            AttackSpec.model_validate(bad)


def test_run_attack_batches_uint8_sets_like_one_call(classifier, data):
    x, y = data
    spec = AttackSpec(name="fast", eps=4)
    x_adv = run_attack(spec, classifier, x.to(torch.uint8), y, batch_size=24)
    assert x_adv.dtype == torch.float32
    torch.testing.assert_close(x_adv, fast(classifier, x, y, 4))
    with pytest.raises(ValueError, match="detector_logit"):
        run_attack(AttackSpec(name="dynamic", eps=1, sigma=0.5), classifier, x, y)


def test_cached_attack_reuses_its_file_only_for_the_same_model_and_data(classifier, data, tmp_path, monkeypatch):
    x, y = data
    spec = AttackSpec(name="fast", eps=4)
    first = cached_attack(tmp_path, spec, classifier, x, y, split="test")
    (path,) = tmp_path.glob("test-fast-eps4-*.pt")
    calls = []
    monkeypatch.setattr(cache_module, "run_attack", lambda *a, **k: calls.append(1) or first)
    assert torch.equal(cached_attack(tmp_path, spec, classifier, x, y, split="test"), first) and not calls
    cached_attack(tmp_path, spec, classifier, x[:10], y[:10], split="test")
    assert calls and len(list(tmp_path.glob("test-fast-eps4-*.pt"))) == 2


def test_report_counts_what_survives_uint8_rounding():
    class Threshold(nn.Module):  # class 1 iff the single pixel exceeds 100.3
        def forward(self, x):
            return torch.cat([torch.zeros(len(x), 1), x.flatten(1) - 100.3], 1)

    x, y = torch.full((2, 1, 1, 1), 100.0), torch.zeros(2, dtype=torch.long)
    x_adv = torch.tensor([100.4, 101.0]).view(2, 1, 1, 1)  # the first rounds back to 100, the second survives
    report = success_report(Threshold(), x, x_adv, y)
    assert report["clean_error"] == 0 and report["success"] == 1.0 and report["success_uint8"] == 0.5
    assert report["median_l2"] == pytest.approx(0.4, abs=1e-4)  # torch's median: the lower middle value


def test_a_cached_attack_draws_the_same_random_starts_whatever_ran_before_it(classifier, data, tmp_path):
    """A resumed run makes its twins in another random state than an uninterrupted one: the cache seeds them itself."""
    x, y = data
    spec = AttackSpec(name="pgd", eps=8, steps=2, restarts=1)
    torch.manual_seed(1)
    first = cached_attack(tmp_path / "a", spec, classifier, x, y, split="test")
    after_making = torch.rand(3)
    torch.manual_seed(2)
    torch.rand(5)
    again = cached_attack(tmp_path / "b", spec, classifier, x, y, split="test")
    assert torch.equal(first, again)
    torch.manual_seed(1)
    cached_attack(tmp_path / "a", spec, classifier, x, y, split="test")  # loaded this time
    assert torch.equal(torch.rand(3), after_making)  # the caller's random state moves alike, made or loaded
