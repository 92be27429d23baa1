import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.stats import wilson_interval
from trainer.detect.evaluate import alert_rate, auroc, calibrate_threshold, calibrated_threshold, detectability, roc, tpr_at_fpr


def test_roc_of_separable_and_of_identical_scores():
    clean, adv = torch.tensor([-2.0, -1.0]), torch.tensor([1.0, 2.0])
    fpr, tpr, _ = roc(clean, adv)
    assert auroc(clean, adv) == 1.0 and tpr_at_fpr(fpr, tpr, 0.0) == 1.0
    tied = torch.zeros(5, dtype=torch.float64)
    fpr, tpr, _ = roc(tied, tied)
    assert auroc(tied, tied) == 0.5 and tpr_at_fpr(fpr, tpr, 0.5) == 0.0  # ties cannot be split


def test_detectability_is_accuracy_on_the_joint_set():
    clean, adv = torch.zeros(10, 1, 2, 2), torch.ones(10, 1, 2, 2)
    by_mean = lambda x: x.mean((1, 2, 3)) - 0.5  # noqa: E731  (logit > 0 for the adversarial twins)
    assert detectability(by_mean, clean, adv, 4, torch.device("cpu")) == 1.0
    always_clean = lambda x: -torch.ones(len(x))  # noqa: E731
    assert detectability(always_clean, clean, adv, 4, torch.device("cpu")) == 0.5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=1, max_size=300), st.sampled_from([0.01, 0.05, 0.1, 0.5]))
def test_calibrated_threshold_gives_at_most_the_requested_fpr(values, fpr):
    scores = torch.tensor(values, dtype=torch.float64)
    t = calibrate_threshold(scores, fpr)
    achieved = alert_rate(scores, t)
    assert achieved <= fpr + 1e-12
    p_adv = torch.sigmoid(scores).tolist()
    if len(set(p_adv)) == len(p_adv):  # without ties in p_adv (not logits) it is exact: floor(fpr * n) above
        assert achieved == np.floor(fpr * len(values) + 1e-9) / len(values)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-30, 30), min_size=1, max_size=120), min_size=1, max_size=6),
       st.sampled_from([0.01, 0.05, 0.1]))
def test_the_each_rule_keeps_every_part_at_or_below_the_fpr_and_is_never_looser_than_pooling(parts, fpr):
    part_scores = [torch.tensor(p, dtype=torch.float64) for p in parts]
    each = calibrated_threshold(part_scores, fpr, "each")
    assert all(alert_rate(s, each) <= fpr + 1e-12 for s in part_scores)
    pooled = calibrated_threshold(part_scores, fpr, "pooled")
    assert pooled == calibrate_threshold(torch.cat(part_scores), fpr)
    assert alert_rate(torch.cat(part_scores), each) <= alert_rate(torch.cat(part_scores), pooled)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(0, 10)  # no successes: upper bound z^2 / (n + z^2)
    assert lo == 0 and abs(hi - 1.96**2 / (10 + 1.96**2)) < 1e-12
    lo, hi = wilson_interval(5, 10)  # symmetric about 1/2
    assert abs(lo + hi - 1) < 1e-12 and 0.23 < lo < 0.24
    assert wilson_interval(0, 0) == (0.0, 1.0)
