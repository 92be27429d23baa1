"""Adversaries of Sec. 3.1 and 3.3 (and adaptive attacks on the detector), by name, cached and reported.

Every attack takes a model mapping float images in 0..255 [N, C, H, W] to logits, such images
and their true labels, and returns adversarial images in [0, 255]; budgets are in 0..255 units.
"""
from trainer.attacks.adaptive import adaptive
from trainer.attacks.apgd import apgd
from trainer.attacks.cache import cached_attack
from trainer.attacks.confined import confined_pgd
from trainer.attacks.cw import carlini_wagner_l2, cw_detector_logit
from trainer.attacks.deepfool import deepfool
from trainer.attacks.dynamic import dynamic
from trainer.attacks.fast import fast
from trainer.attacks.iterative import iterative_l2, iterative_linf
from trainer.attacks.low_frequency import low_frequency_pgd
from trainer.attacks.patch import patch, patch_adaptive
from trainer.attacks.pgd import pgd
from trainer.attacks.registry import ATTACKS, FAMILIES, AttackSpec, attack_key, family, run_attack
from trainer.attacks.report import success_report
from trainer.attacks.selective import orthogonal_pgd, selective_pgd
from trainer.attacks.sparse import sparse_pgd
from trainer.attacks.square import square, square_adaptive

__all__ = [
    "ATTACKS", "AttackSpec", "FAMILIES", "adaptive", "apgd", "attack_key", "cached_attack", "carlini_wagner_l2",
    "confined_pgd", "cw_detector_logit", "deepfool", "dynamic", "family", "fast", "iterative_l2", "iterative_linf",
    "low_frequency_pgd", "orthogonal_pgd", "patch", "patch_adaptive", "pgd", "run_attack", "selective_pgd",
    "sparse_pgd", "square", "square_adaptive", "success_report",
]
