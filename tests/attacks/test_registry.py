"""AttackSpec: each attack's parameters are read off its function's signature."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from trainer.attacks import AttackSpec, attack_key, dynamic
from trainer.attacks.registry import ATTACKS, parameter_model


def test_every_attack_has_a_parameter_model_from_its_signature():
    for name in ATTACKS:
        model = parameter_model(name)
        assert not {"model", "detector_logit", "x", "y"} & set(model.model_fields)
    assert parameter_model("iterative_l2").model_fields["alpha"].default == 20.0  # the function's default
    assert parameter_model("deepfool_l2").model_fields.keys() == {"overshoot", "max_iter", "linf_cap"}  # norm is fixed


@pytest.mark.parametrize("bad, message", [
    ({"name": "deepfool_l2", "eps": 4}, "deepfool_l2 takes no eps"),
    ({"name": "dynamic", "eps": 1, "margin": 1}, "dynamic takes no margin"),
    ({"name": "adaptive", "eps": 1}, "adaptive needs threshold"),
    ({"name": "fast", "eps": 0}, "fast got a bad eps"),
    ({"name": "iterative_l2", "eps": 40, "steps": 2.5}, "iterative_l2 got a bad steps"),
    ({"name": "pgd_typo", "eps": 1}, "unknown attack 'pgd_typo'"),
])
def test_a_parameter_the_attack_does_not_take_is_an_error_naming_it(bad, message):
    with pytest.raises(ValidationError, match=message):
        AttackSpec.model_validate(bad)


def test_attack_keys_of_existing_specs_are_unchanged():
    # Cached attack sets and experiment detectors are named by these keys.
    assert attack_key(AttackSpec(name="dynamic", eps=1, sigma=0.5, alpha=0.25, steps=8)) == "dynamic-eps1-alpha0.25-steps8-sigma0.5"
    assert attack_key(AttackSpec(name="deepfool_linf", linf_cap=6, overshoot=0.02)) == "deepfool_linf-overshoot0.02-linf_cap6"
    assert attack_key(AttackSpec(name="adaptive", eps=2, threshold=0.5, norm="l2", margin=1)) == "adaptive-eps2-threshold0.5-norm" \
                                                                                                    "l2-margin1"


def test_unset_and_none_parameters_take_the_attacks_defaults():
    spec = AttackSpec.model_validate({"name": "dynamic", "eps": 4, "sigma": None, "alpha": None})
    assert spec.params() == {"eps": 4.0} and spec.model_dump() == {"name": "dynamic", "eps": 4.0}
    assert AttackSpec.model_validate(spec.model_dump()) == spec


def test_dynamic_without_sigma_draws_one_per_image(classifier, data):
    x, y = data
    logit = lambda z: z.mean((1, 2, 3)) / 255  # noqa: E731  (a detector whose gradient is the same everywhere)
    torch.manual_seed(0)
    drawn = dynamic(classifier, logit, x, y, eps=4, alpha=1, steps=1)
    torch.manual_seed(0)
    sigma = torch.rand(len(x))
    assert torch.equal(drawn, dynamic(classifier, logit, x, y, eps=4, alpha=1, steps=1, sigma=sigma))
