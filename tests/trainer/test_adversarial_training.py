import json

import pytest
import torch

from common.config import load_config
from trainer import checkpoint, classify
from trainer.adversarial import pgd_accuracy, training_images
from trainer.attacks._ops import cross_entropy
from trainer.attacks.training import fgsm_random_start, n_fgsm
from trainer.attacks.confined import object_mask
from trainer.config import AdversarialTraining, Config
from trainer.distributed import World
from trainer.rundir import load_classifier

EPS = 16  # the tiny task's classes differ by +120 grey levels over a 4x4 cell: eps 16 fools a clean-trained model
TRAIN = ["train.epochs=8", "train.batch_size=50", "train.lr=0.05", "train.lr_milestones=[100]",
         "train.augment.crop_pad=0", "train.augment.flip=false", "device=cpu"]


def _train(dataset, run_dir, *extra):
    cfg = load_config(Config, "configs/demo.yaml", [*TRAIN, f"run_dir={run_dir}", "model.depth=8", *extra])
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    classify.train_classifier(cfg, dataset, torch.device("cpu"), World())
    return load_classifier(run_dir)[0]


@pytest.fixture(scope="module")
def pair(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("adv")
    standard = _train(tiny_dataset, root / "standard", "train.adversarial=null")
    robust = _train(tiny_dataset, root / "robust", f"train.adversarial={{method: fgsm_rs, eps: {EPS}, guard_images: 100}}")
    return standard, robust, tiny_dataset, root


def test_a_robust_classifier_beats_a_standard_one_under_pgd(pair):
    standard, robust, data, _ = pair
    x, y = data.test.images, data.test.labels
    assert classify.accuracy(robust, x, y) > 0.5  # chance is 0.1: robustness is not bought by giving up the task
    # PGD with more steps than the training attack, and than the guard's: the robust model's margin is no artefact.
    std, rob = (pgd_accuracy(m, x, y, EPS, steps=20) for m in (standard, robust))
    assert rob > std + 0.3, (std, rob)


def test_the_epoch_kept_is_as_robust_as_the_best_one(pair):
    *_, root = pair
    epochs = [json.loads(line) for line in (root / "robust" / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 8 and all("val_robust_acc" in e for e in epochs)
    saved = checkpoint.load(root / "robust" / "classifier.pt")
    assert saved["stamp"]["train"]["adversarial"]["method"] == "fgsm_rs"
    _, robust, data, _ = pair
    best = max(e["val_robust_acc"] for e in epochs)
    n = 100
    # The loaded weights give the best epoch's guard number again, within the guard's tolerance (0.02) and its
    # randomness (the guard's random starts differ; PGD-10 at this eps on 100 images moves by a few images).
    again = pgd_accuracy(robust, data.val.images[:n], data.val.labels[:n], EPS, steps=10)
    assert abs(again - best) <= 0.1


@pytest.mark.parametrize("attack, bound", [(fgsm_random_start, EPS), (n_fgsm, 3 * EPS)])
def test_single_step_training_attacks_stay_in_their_budget_and_raise_the_loss(pair, attack, bound):
    standard, _, data, _ = pair
    x, y = data.test.images[:64].float(), data.test.labels[:64]
    torch.manual_seed(0)
    adv = attack(standard, x, y, EPS)
    assert (adv - x).abs().max() <= bound + 1e-4 and adv.min() >= 0 and adv.max() <= 255
    loss = cross_entropy(standard, y)
    with torch.no_grad():
        assert loss(adv).mean() > loss(x).mean()


def test_confined_training_images_leave_the_background_bitwise_and_move_the_object(pair):
    standard, _, data, _ = pair
    x, y = data.test.images[:64].float(), data.test.labels[:64]
    x[..., :4, :] = x[..., :, :4] = 0  # a black border: background the confined attack must leave alone
    cfg = AdversarialTraining(method="fgsm_rs", eps=4, confined={"eps": 3 * EPS, "share": 0.5, "background": 0})
    torch.manual_seed(0)
    adv = training_images(standard, x, y, cfg)
    confined, dense = slice(0, 32), slice(32, 64)
    on_object = object_mask(x[confined], 0).expand_as(x[confined])
    assert (~on_object).sum() >= 32 * 28 and torch.equal(adv[confined][~on_object], x[confined][~on_object])
    assert (adv[confined] - x[confined]).abs().max() <= 3 * EPS + 1e-4
    # FGSM-RS moves every object pixel it can: by its random start and a step of 1.25 eps, clipped to the budget.
    moved = (adv[confined] != x[confined])[on_object & (x[confined] > 0) & (x[confined] < 255)]
    assert moved.float().mean() > 0.9
    assert (adv[dense] - x[dense]).abs().max() <= 4 + 1e-4 and (adv[dense] != x[dense]).any()
    loss = cross_entropy(standard, y[confined])
    with torch.no_grad():
        assert loss(adv[confined]).mean() > loss(x[confined]).mean()
