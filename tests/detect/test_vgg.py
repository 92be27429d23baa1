import torch
from torch import nn

from trainer.config import ModelConfig
from trainer.models.vgg import CHANNELS, IMAGENET_MEAN, IMAGENET_STD, build_vgg16


class TorchvisionVGG16(nn.Module):
    """torchvision's vgg16 module layout (features / avgpool / classifier), for its state_dict keys."""

    def __init__(self):
        super().__init__()
        layers = []
        for c in CHANNELS:
            layers += [nn.MaxPool2d(2)] if c == "M" else [nn.Conv2d(*c, 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                        nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def test_vgg16_loads_torchvision_weights_and_selects_class_logits(tmp_path):
    torch.manual_seed(0)
    source = TorchvisionVGG16().eval()
    torch.save(source.state_dict(), tmp_path / "vgg16.pth")
    model = build_vgg16(ModelConfig(arch="vgg16", weights=tmp_path / "vgg16.pth", class_indices=[3, 1, 7]), 3).eval()
    x = torch.rand(1, 3, 64, 64) * 255
    normalised = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), source(normalised)[:, [3, 1, 7]], atol=1e-4)
        h = model.tap(x, 4)  # after the fourth max-pool: the paper's ImageNet attachment point
    assert h.shape == (1, 512, 4, 4) and model.tap_channels[4] == 512
