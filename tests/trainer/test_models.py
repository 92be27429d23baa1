import pytest
import torch

from trainer.models import DetectedClassifier, Detector, ResNet, paper_pools


def test_resnet32_taps_have_the_papers_shapes():
    model = ResNet(32).eval()
    x = torch.rand(2, 3, 32, 32) * 255
    shapes = [tuple(model.tap(x, i).shape) for i in range(5)]
    assert shapes == [(2, 3, 32, 32), (2, 16, 32, 32), (2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]
    assert [s[1] for s in shapes] == model.tap_channels
    # 3 stages x 5 blocks x 2 convs + first conv + dense = 32 weighted layers
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 32


@pytest.mark.parametrize("point", range(5))
def test_detector_shares_the_trunk_and_matches_the_plain_classifier(point):
    model = ResNet(8).eval()
    fused = DetectedClassifier(model, Detector(model.tap_channels[point], paper_pools(point)), point).eval()
    x = torch.rand(3, 3, 32, 32) * 255
    logits, adv = fused(x)
    assert torch.allclose(logits, model(x), atol=1e-5)
    assert adv.shape == (3,)
    assert torch.allclose(adv, fused.detector_logit(x))


def test_paper_pooling_rule():
    assert [paper_pools(p) for p in range(5)] == [2, 2, 2, 1, 0]
    # AD(4) of ResNet-32 at 32x32 is 8x8: without pools the detector still sees a map
    det = Detector(64, paper_pools(4))
    assert det(torch.rand(2, 64, 8, 8)).shape == (2,)


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="6n\\+2"):
        ResNet(33)
