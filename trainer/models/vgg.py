"""VGG16 for the 10-class ImageNet setup of Sec. 4.2, with attachment points after each max-pool.

AD(0) = normalised input, AD(i) = after the i-th max-pool (i = 1..5), so the paper's
"after the fourth max-pooling layer" is AD(4). A final layer keeps only the logits of the
selected classes (Sec. 4.2: "a layer before the softmax which selects only the 10 relevant
class entries"). Weights load from torchvision's `vgg16` state_dict layout.
"""
from __future__ import annotations

import torch
from torch import nn

from trainer.config import ModelConfig
from trainer.models.tapped import Normalize, TappedClassifier

# torchvision's vgg16 `features` indices: convs, with a max-pool closing each of the five blocks.
BLOCKS = [(0, 5), (5, 10), (10, 17), (17, 24), (24, 31)]
CHANNELS = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "M",
            (256, 512), (512, 512), (512, 512), "M", (512, 512), (512, 512), (512, 512), "M"]
IMAGENET_MEAN = [123.675, 116.28, 103.53]  # torchvision's normalisation, in 0..255 units
IMAGENET_STD = [58.395, 57.12, 57.375]


class SelectLogits(nn.Module):
    """Keeps the logits of `indices` (e.g. 10 of ImageNet's 1000 classes), in that order."""

    def __init__(self, indices: list[int]):
        super().__init__()
        self.register_buffer("indices", torch.tensor(indices, dtype=torch.long), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.index_select(1, self.indices)


class VGG16(TappedClassifier):
    """VGG16 (Simonyan & Zisserman 2015) taking 0..255 RGB images; `class_indices` selects output logits."""

    def __init__(self, num_outputs: int = 1000, class_indices: list[int] | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        for c in CHANNELS:
            layers += [nn.MaxPool2d(2)] if c == "M" else [nn.Conv2d(*c, 3, padding=1), nn.ReLU(inplace=True)]
        self.trunk = nn.ModuleList([Normalize(IMAGENET_MEAN, IMAGENET_STD),
                                    *[nn.Sequential(*layers[a:b]) for a, b in BLOCKS]])
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True),
                          nn.Dropout(), nn.Linear(4096, num_outputs)),
            SelectLogits(class_indices) if class_indices else nn.Identity(),
        )
        self.tap_channels = [3, 64, 128, 256, 512, 512]
        self.tap_strides = [1, 2, 4, 8, 16, 32]


def from_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames torchvision `vgg16` keys (features.N.*, classifier.N.*) to this module's."""
    out = {}
    for key, value in state_dict.items():
        part, index, rest = key.split(".", 2)
        if part == "features":
            block = next(i for i, (a, b) in enumerate(BLOCKS) if a <= int(index) < b)
            out[f"trunk.{block + 1}.{int(index) - BLOCKS[block][0]}.{rest}"] = value
        elif part == "classifier":
            out[f"head.2.{index}.{rest}"] = value
        else:
            raise ValueError(f"unexpected key {key!r} in a torchvision vgg16 state_dict")
    return out


def build_vgg16(cfg: ModelConfig, num_classes: int) -> VGG16:
    """VGG16 for `cfg`: with `class_indices`, the 1000-way net with a selection of `num_classes` logits;
    without, a `num_classes`-way last layer. `cfg.weights` (torchvision layout) is loaded when set."""
    if cfg.class_indices is not None and len(cfg.class_indices) != num_classes:
        raise ValueError(f"model.class_indices has {len(cfg.class_indices)} entries but the data set has {num_classes} classes")
    model = VGG16(1000 if cfg.class_indices else num_classes, cfg.class_indices)
    if cfg.weights is not None:
        state = from_torchvision(torch.load(cfg.weights, map_location="cpu", weights_only=True))
        if not cfg.class_indices:  # a new last layer for num_classes: keep its fresh initialisation
            state = {k: v for k, v in state.items() if not k.startswith("head.2.6.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # The normalisation is ours (torchvision normalises outside the model); anything else missing is an error.
        missing = [k for k in missing if not k.startswith("trunk.0.") and not k.startswith("head.2.6.")]
        if missing or unexpected:
            raise ValueError(f"{cfg.weights}: not a torchvision vgg16 state_dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
