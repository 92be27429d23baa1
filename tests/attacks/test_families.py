"""The attack families beyond dense eps-ball PGD: APGD, object-confined, low-frequency and sparse PGD; FAMILIES."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.attacks import (
    ATTACKS, FAMILIES, AttackSpec, apgd, attack_key, confined_pgd, family, low_frequency_pgd, pgd, run_attack,
    sparse_pgd,
)
from trainer.attacks.apgd import _checkpoints
from trainer.attacks.sparse import l0_box

# float32 images in 0..255: x + delta rounds to within a few ulps of 255, whatever delta was.
ATOL = 4 * 255 * 2**-23

torch.manual_seed(0)
# Untrained, BN kept in train mode (the attacks must switch to eval), to exercise budgets on saturated pixels.
NET = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                    nn.Flatten(), nn.Linear(32, 5))


def seeded(attack, *args, **params) -> torch.Tensor:
    """The attack from the same random state each call, leaving other tests' draws alone."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return attack(*args, **params)


def fooled(model, x_adv, y) -> torch.Tensor:
    """[N] bool: the rounded frame is misclassified."""
    with torch.no_grad():
        return model(x_adv.round()).argmax(1) != y


def assert_at_least_as_strong(fooled_a: torch.Tensor, fooled_b: torch.Tensor) -> None:
    """Paired sign test: were a and b equally strong, the images only one of them fools would split evenly;
    b may fool at most 2 standard deviations (sqrt of the discordant count) more than a."""
    only_a, only_b = (fooled_a & ~fooled_b).sum().item(), (fooled_b & ~fooled_a).sum().item()
    assert only_b - only_a <= 2 * math.sqrt(only_a + only_b) + 1, (only_a, only_b)


def saturated(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [8, 3, 6, 6] with many pixels at 0 and 255, so that clipping to [0, 255] is exercised."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(8, 3, 6, 6, generator=g) * 400 - 70).clamp(0, 255), torch.randint(0, 5, (8,), generator=g)


def changed_locations(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[N]: pixel locations where any channel differs."""
    return (x_adv != x).any(1).flatten(1).sum(1)


def l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


def linf(a, b):
    return (a - b).flatten(1).abs().amax(1)


# --- families -------------------------------------------------------------------------------------------------


def test_every_attack_has_a_family():
    assert FAMILIES.keys() == ATTACKS.keys()
    assert {family(name) for name in ATTACKS} == {"pgd", "apgd", "square", "object-confined", "low-frequency",
                                                  "sparse", "patch", "deepfool", "cw"}
    assert (family("iterative_l2"), family("square_adaptive"), family("sparse_pgd")) == ("pgd", "square", "sparse")
    with pytest.raises(ValueError, match="unknown attack 'pgd_typo'"):
        family("pgd_typo")


# --- budgets and pixel range on saturated images ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm, eps", [("linf", 6.0), ("l2", 90.0)])
def test_dense_families_stay_in_their_ball_and_in_range(seed, norm, eps):
    x, y = saturated(seed)
    dist = linf if norm == "linf" else l2
    for x_adv in (apgd(NET, x, y, eps, norm, steps=6, restarts=2),
                  confined_pgd(NET, x, y, eps, norm, steps=4, restarts=2, background=20.0),
                  low_frequency_pgd(NET, x, y, eps, norm, grid=3, steps=4, restarts=2)):
        assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
        assert x_adv.min() >= 0 and x_adv.max() <= 255
        assert (dist(x_adv, x) <= eps * (1 + 1e-6) + ATOL).all()
    assert NET.training and NET[1].training  # the attacks ran the network in eval mode and restored it


# --- APGD -----------------------------------------------------------------------------------------------------


def test_apgd_checkpoints_follow_the_papers_recursion():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99: steps 0.19, 0.16, ..., then at least 0.06
    assert sorted(_checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("norm, eps", [("linf", 4.0), ("linf", 5.0), ("l2", 40.0)])
def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_steps(classifier, data, norm, eps):
    x, y = data
    by_apgd = fooled(classifier, seeded(apgd, classifier, x, y, eps, norm, steps=20), y)
    by_pgd = fooled(classifier, seeded(pgd, classifier, x, y, eps, norm, steps=20), y)  # 5 restarts
    assert_at_least_as_strong(by_apgd, by_pgd)
    assert 0 < by_apgd.sum() < len(x)  # a budget where strength shows


def test_apgd_fools_at_least_as_many_as_one_run_of_pgd_at_a_small_linf_budget(classifier, data):
    x, y = data
    by_apgd = fooled(classifier, seeded(apgd, classifier, x, y, 4.0, steps=20), y)
    by_pgd = fooled(classifier, seeded(pgd, classifier, x, y, 4.0, steps=20, restarts=1), y)
    assert by_apgd.sum() >= by_pgd.sum() > 0


# --- object-confined PGD --------------------------------------------------------------------------------------


def with_black_border(x: torch.Tensor, width: int = 1) -> torch.Tensor:
    """x with a border of true zeros: the object is the inner (8 - 2 width)^2 pixels."""
    x = x.clone()
    x[..., :width, :] = x[..., -width:, :] = x[..., :, :width] = x[..., :, -width:] = 0
    return x


@pytest.mark.parametrize("norm, eps", [("linf", 8.0), ("l2", 64.0)])
def test_confined_pgd_leaves_the_background_bitwise_and_fools_large_objects(classifier, data, norm, eps):
    x, y = data
    x = with_black_border(x)
    x_adv = seeded(confined_pgd, classifier, x, y, eps, norm, steps=20, restarts=1)
    background = ~(x > 0).any(1, keepdim=True).expand_as(x)
    assert background[:, :, 0].all() and not background[:, :, 1:-1, 1:-1].all()  # the border, and a 6x6 object
    assert torch.equal(x_adv[background], x[background])
    dist = linf if norm == "linf" else l2
    assert (dist(x_adv, x) <= eps * (1 + 1e-6) + ATOL).all()
    correct = ~fooled(classifier, x, y)
    assert fooled(classifier, x_adv, y)[correct].float().mean() >= 0.5  # most of what it could fool


def test_confined_pgd_reads_the_background_level_and_leaves_an_all_background_frame_unchanged(classifier, data):
    x, y = data
    x = x[:16].clone()
    x[0] = 0  # a black frame: no object
    level = 100.0
    x_adv = seeded(confined_pgd, classifier, x, y[:16], 8.0, steps=5, restarts=2, background=level)
    background = ~(x > level).any(1, keepdim=True).expand_as(x)
    assert torch.equal(x_adv[background], x[background]) and torch.equal(x_adv[0], x[0])
    assert not torch.equal(x_adv, x)
    everything = seeded(confined_pgd, classifier, x, y[:16], 8.0, steps=5, restarts=2, background=255.0)
    assert torch.equal(everything, x)


# --- low-frequency PGD ----------------------------------------------------------------------------------------


def upsampling_basis(grid: int, side: int) -> torch.Tensor:
    """[side^2, grid^2]: the columns are Up of the grid's unit arrays (bilinear, aligned corners)."""
    units = torch.eye(grid * grid, dtype=torch.float64).view(-1, 1, grid, grid)
    return F.interpolate(units, size=(side, side), mode="bilinear", align_corners=True).flatten(1).T


def off_span(delta: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per image and channel, the l_2 norm of delta's component outside the span of `basis` (least squares)."""
    d = delta.double().flatten(2).flatten(0, 1).T  # [side^2, N C]
    return (d - basis @ torch.linalg.lstsq(basis, d).solution).norm(dim=0)


@pytest.mark.parametrize("grid", [2, 3, 5])
@pytest.mark.parametrize("norm, eps", [("linf", 16.0), ("l2", 120.0)])
def test_low_frequency_pgd_lies_in_the_span_of_its_upsampled_grid(classifier, data, grid, norm, eps):
    x, y = data
    x = (64 + x / 2).round()  # in [64, 192]: no budget here reaches 0 or 255, so clipping never acts
    delta = seeded(low_frequency_pgd, classifier, x, y, eps, norm, grid=grid, steps=10, restarts=1) - x
    basis = upsampling_basis(grid, x.shape[-1])
    # x + Up(v) is a float32 below 256, rounded by at most 2^-17 per pixel; out - x is then exact, so
    # delta is off the span by at most that rounding over 8 x 8 pixels (Up's own float error is smaller).
    tol = math.sqrt(64) * 2**-16
    assert (off_span(delta, basis) <= tol).all()
    assert (delta.flatten(1).abs().amax(1) > 0).all()  # it did perturb every image
    dense = seeded(pgd, classifier, x, y, eps, norm, steps=10, restarts=1) - x
    assert off_span(dense, basis).median() > 1000 * tol  # the check can tell a dense perturbation
    dist = delta.flatten(1).abs().amax(1) if norm == "linf" else delta.flatten(1).norm(dim=1)
    assert (dist <= eps * (1 + 1e-6) + ATOL).all()


# --- sparse PGD_0 ---------------------------------------------------------------------------------------------


def test_the_l0_projection_is_the_nearest_point_with_k_changed_pixels_in_the_box():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = (torch.rand(1, 2, 2, 2, generator=g) * 255).round()
        v = x + torch.randn(1, 2, 2, 2, generator=g) * 200
        for k in (1, 2, 3):
            p = l0_box(v, x, k)
            assert changed_locations(p, x) <= k and p.min() >= 0 and p.max() <= 255
            # brute force: change x to clip(v) on each set of k of the 4 locations
            best = min((v - torch.where(mask, v.clamp(0, 255), x)).norm().item()
                       for keep in itertools.combinations(range(4), k)
                       for mask in [torch.isin(torch.arange(4), torch.tensor(keep)).view(1, 1, 2, 2)])
            assert (v - p).norm().item() == pytest.approx(best, rel=1e-6)


def test_sparse_pgd_changes_at_most_k_pixels_and_fools_more_with_more(classifier, data):
    x, y = data
    by_k = {}
    for k in (1, 2, 4):
        x_adv = seeded(sparse_pgd, classifier, x, y, pixels=k, steps=10, restarts=1)
        assert (changed_locations(x_adv, x) <= k).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 255
        by_k[k] = fooled(classifier, x_adv, y)
    assert_at_least_as_strong(by_k[2], by_k[1])
    assert_at_least_as_strong(by_k[4], by_k[2])
    # ... and more pixels fool significantly more: the paired sign test the other way
    only_4, only_1 = (by_k[4] & ~by_k[1]).sum().item(), (by_k[1] & ~by_k[4]).sum().item()
    assert only_4 - only_1 > 2 * math.sqrt(only_4 + only_1) + 1, (only_4, only_1)


def test_sparse_pgd_stays_in_range_on_saturated_images():
    x, y = saturated(0)
    x_adv = sparse_pgd(NET, x, y, pixels=3, steps=5, restarts=2)
    assert (changed_locations(x_adv, x) <= 3).all() and x_adv.min() >= 0 and x_adv.max() <= 255


# --- through the registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, key", [
    ({"name": "apgd", "eps": 4, "steps": 5}, "apgd-eps4-steps5"),
    ({"name": "confined_pgd", "eps": 4, "steps": 5, "restarts": 1, "background": 0},
     "confined_pgd-eps4-steps5-restarts1-background0"),
    ({"name": "low_frequency_pgd", "eps": 8, "grid": 3, "steps": 5, "restarts": 1},
     "low_frequency_pgd-eps8-steps5-restarts1-grid3"),
    ({"name": "sparse_pgd", "pixels": 3, "steps": 5, "restarts": 1}, "sparse_pgd-steps5-restarts1-pixels3"),
])
def test_every_new_attack_runs_from_a_spec(classifier, data, params, key):
    x, y = data
    x = with_black_border(x)
    spec = AttackSpec.model_validate(params)
    assert attack_key(spec) == key
    x_adv = seeded(run_attack, spec, classifier, x.to(torch.uint8), y, batch_size=24)
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32 and x_adv.min() >= 0 and x_adv.max() <= 255
    if spec.name == "sparse_pgd":
        assert (changed_locations(x_adv, x) <= 3).all()
    else:
        assert (linf(x_adv, x) <= params["eps"] + ATOL).all()
    if spec.name == "confined_pgd":
        assert torch.equal(x_adv[..., 0, :], x[..., 0, :])


@pytest.mark.parametrize("bad", [
    {"name": "low_frequency_pgd", "eps": 4, "grid": 0},
    {"name": "low_frequency_pgd", "eps": 4, "grid": 2.5},
    {"name": "sparse_pgd", "pixels": 0},
    {"name": "sparse_pgd", "pixels": -3},
    {"name": "confined_pgd", "eps": 4, "background": -1},
    {"name": "confined_pgd", "eps": 4, "background": 256},
    {"name": "apgd", "eps": 4, "grid": 4},  # a parameter of another attack
])
def test_specs_reject_bad_new_parameters(bad):
    with pytest.raises(ValueError):
        AttackSpec.model_validate(bad)
