"""Adversaries of Sec. 3.1 and 3.3 (and adaptive attacks on the detector), by name, cached and reported.

Every attack takes a model mapping float images in 0..255 [N, C, H, W] to logits, such images
and their true labels, and returns adversarial images in [0, 255]; budgets are in 0..255 units.
"""
from trainer.attacks.adaptive import adaptive
from trainer.attacks.cache import cached_attack
from trainer.attacks.cw import cw_detector_logit
from trainer.attacks.deepfool import deepfool
from trainer.attacks.dynamic import dynamic
from trainer.attacks.fast import fast
from trainer.attacks.iterative import iterative_l2, iterative_linf
from trainer.attacks.registry import ATTACKS, AttackSpec, attack_key, run_attack
from trainer.attacks.report import success_report
from trainer.attacks.selective import orthogonal_pgd, selective_pgd

__all__ = [
    "ATTACKS", "AttackSpec", "adaptive", "attack_key", "cached_attack", "cw_detector_logit", "deepfool", "dynamic",
    "fast", "iterative_l2", "iterative_linf", "orthogonal_pgd", "run_attack", "selective_pgd", "success_report",
]
