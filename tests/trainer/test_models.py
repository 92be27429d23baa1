import pytest
import torch

from trainer import checkpoint
from trainer.config import DetectorTraining
from trainer.models import DetectedClassifier, Detector, ImageNetDetector, ResNet, build_detector, paper_pools
from trainer.rundir import load_detected_classifier
from trainer.models.detector import ARCHS, FrameDetector


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


def test_imagenet_detector_has_the_sec_4_2_layout_and_one_logit():
    det = ImageNetDetector(512).eval()
    convs = [m for m in det.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.kernel_size, m.out_channels) for m in convs] == [((3, 3), 196)] * 5 + [((1, 1), 2)]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in det.modules()) == 5
    h = torch.rand(3, 512, 14, 14)  # VGG16's AD(4) at 224x224
    with torch.no_grad():
        assert det.body[:2](h).shape == (3, 196, 7, 7)  # the one 2x2 max-pool, right after the first conv
        z = det.body(h)
        assert z.shape == (3, 2)
        assert torch.equal(det(h), z[:, 1] - z[:, 0])  # logit = z_adv - z_clean
        assert det(torch.rand(2, 512, 2, 2)).shape == (2,)  # AD(4) at 32x32 still fits


def test_build_detector_knows_the_configs_archs():
    for arch in ARCHS:  # the config takes exactly the archs build_detector knows
        assert DetectorTraining(arch=arch).arch == arch
    with pytest.raises(ValueError, match="unknown detector arch 'vgg'"):
        DetectorTraining(arch="vgg")
    assert isinstance(build_detector("imagenet", 64, 4), ImageNetDetector)
    fig1 = build_detector("fig1", 64, 4)
    assert isinstance(fig1, Detector) and not any(isinstance(m, torch.nn.MaxPool2d) for m in fig1.modules())
    with pytest.raises(ValueError, match="unknown detector arch"):
        build_detector("vgg", 64, 4)


def test_frame_detector_reads_the_frame_at_full_resolution():
    model = ResNet(8, 1, 10).eval()
    det = build_detector("frame", model.tap_channels[0], 0)
    assert isinstance(det, FrameDetector)
    convs = [m for m in det.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [32, 32, 64, 64, 128, 2] and convs[0].in_channels == 1
    assert all(m.stride == (1, 1) for m in convs)  # no strided stem: the perturbation's pixel pattern survives
    fused = DetectedClassifier(model, det.eval(), 0).eval()
    x = torch.rand(3, 1, 28, 28) * 255
    with torch.no_grad():
        logits, adv = fused(x)
        assert torch.allclose(logits, model(x), atol=1e-5) and adv.shape == (3,)


def test_frame_detector_width_sets_its_maps_and_only_its_own():
    convs = [m for m in build_detector("frame", 1, 0, width=8).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [8, 8, 16, 16, 32, 2]
    assert DetectorTraining(arch="frame", width=8).width == 8
    with pytest.raises(ValueError, match="width sets the frame detector's maps"):
        DetectorTraining(arch="fig1", width=8)


@pytest.mark.parametrize("arch, points", [("resnet", 5), ("vgg16", 6)])
def test_the_config_knows_each_classifiers_attachment_points(arch, points):
    from trainer.config import ModelConfig
    from trainer.models.vgg import VGG16

    model = ResNet(8) if arch == "resnet" else VGG16()
    assert len(model.tap_channels) == ModelConfig(arch=arch).attachment_points == points


@pytest.mark.parametrize("arch", ["fig1", "imagenet", "frame", None])
def test_detector_checkpoint_round_trip(tmp_path, arch):
    """build.py rebuilds what a detector.pt holds; one without an `arch` key (older runs) is Fig. 1's."""
    torch.manual_seed(0)
    classifier, point = ResNet(8, 3, 4).eval(), 3
    detector = build_detector(arch or "fig1", classifier.tap_channels[point], point)
    for m in detector.modules():  # non-trivial statistics, so a mismatched rebuild shows in the outputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
    checkpoint.save({"model_config": {"arch": "resnet", "depth": 8}, "in_channels": 3, "num_classes": 4,
                     "state_dict": classifier.state_dict()}, tmp_path / "classifier.pt")
    ckpt = {"name": "d", "point": point, "in_channels": classifier.tap_channels[point], "state_dict": detector.state_dict(),
            "adversary": {"name": "fast", "eps": 2}, "mode": "static", "thresholds": [{"fpr": 0.01, "threshold": 0.5}],
            "threshold": 0.5, "threshold_fpr": 0.01, "detectability": 0.9, "auroc": 0.9}
    checkpoint.save(ckpt | ({"arch": arch} if arch else {"pools": paper_pools(point)}), tmp_path / "detectors" / "d" / "detector.pt")
    model, _, _ = load_detected_classifier(tmp_path, "d")
    assert type(model.detector) is type(detector)
    x = torch.rand(2, 3, 16, 16) * 255
    with torch.no_grad():
        assert torch.allclose(model.detector_logit(x), DetectedClassifier(classifier, detector.eval(), point).detector_logit(x))


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="6n\\+2"):
        ResNet(33)
