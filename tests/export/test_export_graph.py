"""The fused graph computes what the PyTorch model computes, from camera frames."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from export.cli import app
from export.compare import session_outputs, to_frames, torch_outputs
from export.errors import ExportError
from export.graph import FramesToImages
from export.pipeline import export_onnx
from trainer.rundir import load_run
from export.verify import open_session

ATOL = 1e-4


@pytest.mark.parametrize("kind", ["clean", "adversarial"])
def test_fp32_matches_pytorch(run_dir, exported, kind):
    run = load_run(run_dir)
    images = getattr(run.images, kind)
    probs, p_adv = session_outputs(open_session(exported[0]), images)
    ref_probs, ref_p_adv = torch_outputs(run, images)
    assert np.abs(probs - ref_probs).max() <= ATOL
    assert np.abs(p_adv - ref_p_adv).max() <= ATOL


@pytest.mark.parametrize("batch", [1, 7])
def test_batch_sizes_run(run_dir, exported, batch):
    run = load_run(run_dir)
    images = run.images.clean[:batch]
    probs, p_adv = open_session(exported[0]).run(["probs", "p_adv"], {"frames": to_frames(images)})
    assert probs.shape == (batch, 4) and p_adv.shape == (batch,)
    assert np.abs(probs - torch_outputs(run, images)[0]).max() <= ATOL


def test_trunk_is_computed_once(exported):
    """One graph, one copy of the trunk: as many Convs as the classifier and detector have together."""
    convs = sum(node.op_type == "Conv" for node in onnx.load(exported[0]).graph.node)
    run_convs = 1 + 3 * 2 + 2 + 4  # ResNet-8: stem, 3 blocks x 2, 2 projections; detector: 4
    assert convs == run_convs


def test_grey_run(make_run, tmp_path):
    """C=1: GRAY metadata, a [N, H, W, 1] input, and parity with no channel flip."""
    run_dir = make_run(tmp_path / "grey", channels=1)
    out, report = export_onnx(run_dir, out=tmp_path / "grey.onnx")
    meta = dict(open_session(out).get_modelmeta().custom_metadata_map)
    assert meta["color_order"] == "GRAY" and meta["input_channels"] == "1"
    run = load_run(run_dir)
    probs, p_adv = session_outputs(open_session(out), run.images.adversarial)
    assert np.abs(p_adv - torch_outputs(run, run.images.adversarial)[1]).max() <= ATOL


def test_sec_4_2_detector_run(make_run, tmp_path):
    """A run with Sec. 4.2's detector exports as one graph with PyTorch parity, from the command line."""
    run_dir = make_run(tmp_path / "imagenet", point=3, arch="imagenet")
    out = tmp_path / "m.onnx"
    assert CliRunner().invoke(app, ["onnx", "--run", str(run_dir), "--out", str(out)]).exit_code == 0
    convs = sum(node.op_type == "Conv" for node in onnx.load(out).graph.node)
    assert convs == 1 + 3 * 2 + 2 + 6  # ResNet-8 as in test_trunk_is_computed_once; detector: 5 + 1x1
    run = load_run(run_dir)
    for images in (run.images.clean, run.images.adversarial):
        probs, p_adv = session_outputs(open_session(out), images)
        ref_probs, ref_p_adv = torch_outputs(run, images)
        assert np.abs(probs - ref_probs).max() <= ATOL and np.abs(p_adv - ref_p_adv).max() <= ATOL


def test_an_or_of_two_frame_detectors_exports_as_one_graph(make_run, tmp_path):
    """A run whose detector is an OR (config `either`) exports with PyTorch parity: both members in one graph."""
    run_dir = make_run(tmp_path / "either", channels=1, point=0, arch="frame", members=2)
    out, _ = export_onnx(run_dir, out=tmp_path / "m.onnx")
    convs = sum(node.op_type == "Conv" for node in onnx.load(out).graph.node)
    assert convs == 1 + 3 * 2 + 2 + 2 * 6  # ResNet-8; each frame detector: 5 + 1x1
    run = load_run(run_dir)
    for images in (run.images.clean, run.images.adversarial):
        probs, p_adv = session_outputs(open_session(out), images)
        assert np.abs(p_adv - torch_outputs(run, images)[1]).max() <= ATOL


def test_a_narrower_frame_detector_exports_at_its_width(make_run, tmp_path):
    """The detector checkpoint's `width` rebuilds the frame detector it was trained as: the graph holds its maps."""
    run_dir = make_run(tmp_path / "narrow", channels=1, point=0, arch="frame", width=8)
    out, _ = export_onnx(run_dir, out=tmp_path / "m.onnx")
    graph = onnx.load(out).graph
    shapes = {tuple(t.dims) for t in graph.initializer}
    assert (8, 1, 3, 3) in shapes and (32, 16, 3, 3) in shapes and not any(s[:1] == (32,) and s[1:2] == (1,) for s in shapes)
    run = load_run(run_dir)
    for images in (run.images.clean, run.images.adversarial):
        assert np.abs(session_outputs(open_session(out), images)[1] - torch_outputs(run, images)[1]).max() <= ATOL


def test_bgr_bug_fails_parity_and_leaves_nothing(run_dir, tmp_path, monkeypatch):
    """A graph that forgets BGR -> RGB must not ship: parity fails, no .onnx, no manifest."""
    monkeypatch.setattr(FramesToImages, "forward", lambda self, frames: frames.permute(0, 3, 1, 2).float())
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="fp32 export failed verification"):
        export_onnx(run_dir, out=out)
    assert list(tmp_path.iterdir()) == []
