"""The typed schema of `trainer fit --config FILE`.

One section per stage. The YAML files in `configs/` are instances of `Config`;
`common.config.load_config` validates them and applies `--set` overrides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, PositiveInt

from common.config import Schema


class DataConfig(Schema):
    """Which data set to load and how to split it."""

    name: Literal["cifar10", "fashion-mnist", "mnist", "folder"] = "fashion-mnist"
    root: Optional[Path] = Field(None, description="where the files are; None = the data set's default location")
    download: bool = Field(True, description="fetch the official archive (md5-checked) when files are missing")
    val_size: PositiveInt = Field(5000, description="images split off the end of the train set for validation")
    train_limit: Optional[PositiveInt] = Field(None, description="use only the first N training images (CPU-sized runs)")
    test_limit: Optional[PositiveInt] = Field(None, description="use only the first N test images")
    image_size: Optional[PositiveInt] = Field(None, description="resize folder images to this square size")
    channels: Literal[1, 3] = Field(3, description="folder data sets: decode as grey (1) or colour (3)")


class ModelConfig(Schema):
    """The classifier: the paper's ResNet (Fig. 1) or VGG16 for Sec. 4.2."""

    arch: Literal["resnet", "vgg16"] = "resnet"
    depth: Literal[8, 20, 32, 56] = 32
    weights: Optional[Path] = Field(None, description="vgg16: torchvision-layout state_dict to start from")
    class_indices: Optional[list[int]] = Field(None, description="vgg16: the logits to keep (Sec. 4.2's 10-class layer)")


class AugmentConfig(Schema):
    """Training-time augmentation; the paper does not state one."""

    crop_pad: int = Field(4, ge=0, description="random crop after zero-padding by this many pixels; 0 = off")
    flip: bool = Field(True, description="random horizontal flips")


class TrainConfig(Schema):
    """Classifier training (Sec. 4.1)."""

    epochs: PositiveInt = 100
    batch_size: PositiveInt = 128
    eval_batch_size: PositiveInt = 1000
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    lr_milestones: list[PositiveInt] = Field([41, 61], description="epochs after which lr is multiplied by lr_gamma")
    lr_gamma: float = Field(0.1, gt=0)
    augment: AugmentConfig = AugmentConfig()
    channels_last: bool = Field(True, description="GPU only")
    bf16: bool = Field(True, description="bf16 autocast, GPU only")
    compile: bool = Field(False, description="torch.compile the model, GPU only")


class Config(Schema):
    """Everything `trainer fit` does, stage by stage."""

    run_dir: Path = Path("runs/default")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
