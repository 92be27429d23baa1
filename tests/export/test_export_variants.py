"""fp16 and int8 variants: shipped with a quality report, refused when detection quality cannot be vouched for."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export.compare import Scores, Tolerances, judge
from trainer.detect.evaluate import auroc
from export.errors import ExportError
from export.pipeline import export_onnx
from trainer.rundir import EvalImages
from export.verify import open_session, verify_file

# The fixture's detector is untrained: its p_adv values crowd around the threshold, so a few
# decisions flip under int8 noise that a trained detector would not notice. The gates are
# tested on crafted scores below; here the tolerances only need to let the export through.
LOOSE = Tolerances(max_auroc_drop=0.2, min_agreement=0.8)


def test_fp16_variant(run_dir, tmp_path):
    out, report = export_onnx(run_dir, out=tmp_path / "m.onnx", precision="fp16")
    session = open_session(out)
    assert session.get_modelmeta().custom_metadata_map["precision"] == "fp16"
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert {o.type for o in session.get_outputs()} == {"tensor(float)"}
    assert any(line.startswith("fp16 vs PyTorch fp32") for line in report)
    assert any("AUROC of p_adv" in line for line in report)


def test_int8_variant(run_dir, tmp_path):
    out, report = export_onnx(run_dir, out=tmp_path / "m.onnx", precision="int8", tolerances=LOOSE)
    model = onnx.load(out)
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert {p.key: p.value for p in model.metadata_props}["precision"] == "int8"
    text = "\n".join(report)
    assert "int8 vs PyTorch fp32" in text and "clean accuracy" in text and "alert agreement" in text
    verify_file(out, run_dir, tolerances=LOOSE)


def test_variant_without_held_out_images_needs_force(make_run, tmp_path):
    run_dir = make_run(tmp_path / "run", eval_images=False)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="cannot be judged.*--force"):
        export_onnx(run_dir, out=out, precision="int8")
    assert not out.exists()
    _, report = export_onnx(run_dir, out=out, precision="int8", force=True)
    assert out.exists() and "WARNING" in report[-2]


def _scores(p_clean, p_adv, probs):
    return Scores(probs, probs, np.asarray(p_clean, np.float32), np.asarray(p_adv, np.float32))


@pytest.fixture
def separable():
    """A detector that separates perfectly (AUROC 1), with threshold 0.5, and its held-out images."""
    n = 50
    images = EvalImages(np.zeros((n, 3, 4, 4), np.uint8), np.zeros((n, 3, 4, 4), np.uint8),
                        np.zeros(n, np.int64), synthetic=False)
    probs = np.tile(np.array([[0.9, 0.1]], np.float32), (n, 1))
    return images, _scores(np.linspace(0.05, 0.4, n), np.linspace(0.6, 1.0, n), probs), probs


def test_variant_that_keeps_quality_passes(separable):
    images, reference, probs = separable
    graph = _scores(reference.p_clean + 0.01, reference.p_adv - 0.01, probs)
    assert judge("int8", reference, graph, images, 0.5).failures == []


def test_variant_that_loses_auroc_fails(separable):
    images, reference, probs = separable
    p_adv = reference.p_adv.copy()
    p_adv[:5] = 0.0  # 5 of 50 adversarial images now score below every clean one: AUROC 1 -> 0.9
    result = judge("int8", reference, _scores(reference.p_clean, p_adv, probs), images, 0.5)
    assert "AUROC of p_adv drops by 0.1000 > 0.01 (1.0000 -> 0.9000)" in result.failures


def test_variant_that_flips_decisions_fails(separable):
    images, reference, probs = separable
    p_clean = reference.p_clean.copy()
    p_clean[-2:] = 0.51  # 2 of 100 decisions flip: 98% < 99%, AUROC stays 1
    result = judge("int8", reference, _scores(p_clean, reference.p_adv, probs), images, 0.5)
    assert result.failures == ["alert decisions agree with fp32 on only 98.00% < 99.00%"]


def test_fp32_is_judged_on_parity(separable):
    images, reference, probs = separable
    result = judge("fp32", reference, _scores(reference.p_clean + 2e-4, reference.p_adv, probs), images, 0.5)
    assert result.failures and "differs from PyTorch by 2.00e-04" in result.failures[0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=12), st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_auroc_is_the_pairwise_win_rate(neg, pos):
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert auroc(np.array(neg, float), np.array(pos, float)) == pytest.approx(wins / (len(neg) * len(pos)))
