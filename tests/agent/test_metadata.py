"""The ONNX metadata contract (common/metadata.py): one model, written and read as strings."""
from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from common.errors import UserError
from common.metadata import PRECISIONS, MetadataError, ModelMetadata
from fixture_model import CLASS_NAMES, base_metadata


def test_props_are_strings_and_read_back_typed():
    props = base_metadata(32, 32, 3, 0.875, CLASS_NAMES)
    assert all(isinstance(v, str) for v in props.values())
    assert props["threshold"] == "0.875" and props["color_order"] == "BGR" and json.loads(props["class_names"]) == CLASS_NAMES
    meta = ModelMetadata.from_props(props)
    assert meta.threshold == 0.875 and meta.input_channels == 3 and meta.thresholds[0].fpr == 0.01
    assert meta.to_props() == props


def test_unknown_keys_are_ignored_so_older_readers_accept_newer_models():
    props = {**base_metadata(32, 32, 3, 0.5, CLASS_NAMES), "added_later": json.dumps({"worst": 0.1})}
    assert ModelMetadata.from_props(props) == ModelMetadata.from_props(base_metadata(32, 32, 3, 0.5, CLASS_NAMES))


def test_an_optional_key_is_one_field():
    class Extended(ModelMetadata):
        added_later: Optional[dict[str, Any]] = None

    props = base_metadata(32, 32, 3, 0.5, CLASS_NAMES)
    assert "added_later" not in Extended.from_props(props).to_props()  # None is not written
    with_key = {**props, "added_later": json.dumps({"worst": 0.1})}
    assert Extended.from_props(with_key).added_later == {"worst": 0.1} and Extended.from_props(with_key).to_props() == with_key


@pytest.mark.parametrize("change, message", [
    ({"threshold": None}, "metadata lacks threshold"),
    ({"threshold": "1.5"}, "threshold"),
    ({"precision": "int4"}, "precision"),
    ({"class_names": "[t-shirt"}, "class_names is not JSON"),
    ({"input_channels": "1"}, "color_order BGR does not fit 1 input channels"),
    ({"format": "adversary-detector/2"}, "format"),
])
def test_a_broken_contract_is_a_user_error_naming_the_key(change, message):
    props = base_metadata(32, 32, 3, 0.5, CLASS_NAMES)
    props = {k: v for k, v in {**props, **change}.items() if v is not None}
    with pytest.raises(MetadataError, match=message) as err:
        ModelMetadata.from_props(props)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


def test_the_precisions_are_the_contracts():
    assert PRECISIONS == ("fp32", "fp16", "int8")
