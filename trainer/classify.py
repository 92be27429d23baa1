"""Classifier training (Sec. 4.1): SGD with momentum, step schedule, best-validation checkpoint.

The whole data set lives on the training device as uint8; batches are cast and augmented
there, so a GPU never waits for a DataLoader. Every epoch ends with a resumable checkpoint;
`classifier.pt` is written once training is over and marks the stage done.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from trainer.progress import progress_bar

from trainer import checkpoint, stamped
from trainer.adversarial import pgd_accuracy, training_images
from trainer.augment import random_crop_flip, through_camera_share
from trainer.config import Config
from trainer.data import Dataset
from trainer.distributed import World, all_reduce_sum, barrier
from trainer.models.build import build_classifier
from trainer.loop import train_epochs
from trainer.models.tapped import TappedClassifier
from trainer.rundir import RunDir, classifier_stamp

@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on uint8 or float images (moved batch by batch to the model's device)."""
    model_was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device, non_blocking=True).float()
        correct += (model(x).argmax(1) == labels[i : i + batch_size].to(device)).sum().item()
    model.train(model_was_training)
    return correct / max(len(images), 1)


def _autocast(cfg: Config, device: torch.device):
    if device.type == "cuda" and cfg.train.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_classifier(cfg: Config, data: Dataset, device: torch.device, world: World) -> dict:
    """Train (or resume, or just load) the run's classifier; returns the `classifier.pt` dict.

    `classifier.pt` records `classifier_stamp(cfg)`: a config that would train another
    classifier trains it again instead of reusing the old one.
    """
    files = RunDir(cfg.run_dir)
    stamp = classifier_stamp(cfg)
    if files.classifier.exists():
        done = checkpoint.load(files.classifier, device)
        if stamped.STAMP not in done:
            if world.is_main:
                print(f"classifier: {files.classifier} predates config stamps; reusing it (delete it to retrain)")
            return done
        if stamped.made_under(done, stamp):
            return done
        if world.is_main:
            print("classifier: config changed since it was trained, training it again")
        barrier(world)  # every process has read the old one before rank 0 replaces it

    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.model, data.channels, data.num_classes).to(device)
    on_gpu = device.type == "cuda"
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    t = cfg.train
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                          nesterov=False)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=t.lr_milestones, gamma=t.lr_gamma)
    net = DistributedDataParallel(model) if world.size > 1 else model
    step = torch.compile(net) if (on_gpu and t.compile) else net
    x_train = data.train.images.to(device)
    y_train = data.train.labels.to(device)

    adv = t.adversarial

    def run_epoch(epoch: int, gen: torch.Generator) -> dict:
        if adv is not None:  # the training attack's random starts, reproducible on resume
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen, device=device)))
        order = torch.randperm(len(x_train), generator=gen, device=device)
        order = order[world.rank :: world.size]
        model.train()
        stats = torch.zeros(3, device=device)  # loss sum, correct, seen
        batches = range(0, len(order), t.batch_size)
        bar = progress_bar(batches, desc=f"epoch {epoch + 1}/{t.epochs}", leave=False, show=world.is_main)
        for i in bar:
            idx = order[i : i + t.batch_size]
            x = random_crop_flip(through_camera_share(x_train[idx], t.augment.camera_share, gen), t.augment.crop_pad,
                                 t.augment.flip, gen).float()
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[idx]
            if adv is not None:
                x = training_images(model, x, y, adv)
            with _autocast(cfg, device):
                logits = step(x)
                loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stats += torch.stack([loss.detach().float() * len(y), (logits.argmax(1) == y).sum().float(),
                                  torch.tensor(float(len(y)), device=device)])
            if world.is_main and (i // t.batch_size) % 20 == 0:
                bar.set_postfix(loss=f"{stats[0].item() / stats[2].item():.3f}", acc=f"{stats[1].item() / stats[2].item():.3f}")
        sched.step()
        all_reduce_sum(stats, world)
        record = {"lr": opt.param_groups[0]["lr"], "train_loss": stats[0].item() / stats[2].item(),
                  "train_acc": stats[1].item() / stats[2].item(),
                  "val_acc": accuracy(model, data.val.images, data.val.labels, t.eval_batch_size)}
        if adv is not None:
            n = adv.guard_images
            record["val_robust_acc"] = pgd_accuracy(model, data.val.images[:n], data.val.labels[:n], adv.eps,
                                                    adv.guard_steps, t.eval_batch_size)
        return record

    kept_val = train_epochs(model, {"optimizer": opt, "scheduler": sched}, run_epoch, epochs=t.epochs, seed=cfg.seed,
                            device=device, select="val_acc" if adv is None else "val_robust_acc", state_path=files.classifier_last,
                            tolerance=0.0 if adv is None else adv.guard_tolerance,
                            metrics_path=files.metrics, label="classifier", stamp=stamp, writes=world.is_main)
    result = _finish(cfg, model, data)
    if world.is_main:
        result = stamped.save(files.classifier, result, stamp)
        files.classifier_last.unlink(missing_ok=True)
        robust = "" if adv is None else f", PGD-{adv.guard_steps} val acc at eps {adv.eps:g} {kept_val:.4f}"
        print(f"classifier: val acc {result['val_acc']:.4f}{robust}, test acc {result['test_acc']:.4f} -> {files.classifier}")
    barrier(world)
    return result


def _finish(cfg: Config, model: TappedClassifier, data: Dataset) -> dict:
    return {
        "model_config": cfg.model.model_dump(mode="json"),
        "in_channels": data.channels,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "input_size": [data.height, data.width],
        "dataset": data.name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": cfg.train.epochs,
        "val_acc": accuracy(model, data.val.images, data.val.labels, cfg.train.eval_batch_size),
        "test_acc": accuracy(model, data.test.images, data.test.labels, cfg.train.eval_batch_size),
    }
