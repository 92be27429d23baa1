"""Image folders of PNGs, decoded with OpenCV."""
from __future__ import annotations

import pytest
import torch

from data.data_writers import write_folder
from trainer.config import DataConfig
from trainer.data import DataError, load_dataset


def cfg(root, **kw) -> DataConfig:
    return DataConfig(name="folder", root=root, download=False, **{"val_size": 2, "image_size": 4, **kw})


@pytest.fixture
def folder(tmp_path):
    """train: cat 3, dog 4 images; test: cat 2, dog 1 (sizes 6x8, BGR (k, 10*class, 200))."""
    return write_folder(tmp_path / "imgs", {"train": {"dog": 4, "cat": 3}, "test": {"cat": 2, "dog": 1}})


def test_loads_rgb_resized_with_sorted_classes(folder):
    data = load_dataset(cfg(folder))
    assert data.classes == ["cat", "dog"]
    assert (len(data.train), len(data.val), len(data.test)) == (5, 2, 3)
    assert data.train.images.shape == (5, 3, 4, 4) and data.train.images.dtype == torch.uint8
    everything = torch.cat([data.train.images, data.val.images])
    labels = torch.cat([data.train.labels, data.val.labels])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    # Written as BGR (k, 10*class, 200): RGB order puts 200 first and k last.
    for image, label in zip(everything, labels):
        assert image[0].eq(200).all() and image[1].eq(10 * label).all()
    blue = sorted(int(image[2, 0, 0]) for image, label in zip(everything, labels) if label == 1)
    assert blue == [0, 1, 2, 3]


def test_order_is_deterministic_and_mixes_classes(tmp_path):
    root = write_folder(tmp_path, {"train": {"a": 10, "b": 10}, "test": {"a": 1}})
    first, second = load_dataset(cfg(root, val_size=6)), load_dataset(cfg(root, val_size=6))
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.val.labels, second.val.labels)
    assert set(first.val.labels.tolist()) == {0, 1}  # not just the last class


def test_grey(folder):
    data = load_dataset(cfg(folder, channels=1, image_size=3))
    assert data.test.images.shape == (3, 1, 3, 3)


def test_val_folder_is_used(folder):
    write_folder(folder, {"val": {"dog": 1}})
    data = load_dataset(cfg(folder, val_size=100))
    assert (len(data.train), len(data.val)) == (7, 1) and data.val.labels.tolist() == [1]


def test_unreadable_image_names_the_file(folder):
    bad = folder / "train" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=f"cannot decode image {bad}"):
        load_dataset(cfg(folder))


def test_other_files_are_ignored(folder):
    (folder / "train" / "cat" / "notes.txt").write_text("x")
    (folder / "train" / "README").write_text("x")
    assert len(load_dataset(cfg(folder)).train) == 5


def test_image_size_and_root_are_required(folder):
    with pytest.raises(DataError, match="data.image_size"):
        load_dataset(DataConfig(name="folder", root=folder))
    with pytest.raises(DataError, match="data.root"):
        load_dataset(DataConfig(name="folder", image_size=4))


def test_missing_test_folder(tmp_path):
    root = write_folder(tmp_path, {"train": {"a": 3}})
    with pytest.raises(DataError, match="has no test/ folder"):
        load_dataset(cfg(root))


def test_unknown_test_class(folder):
    write_folder(folder, {"test": {"zebra": 1}})
    with pytest.raises(DataError, match="class 'zebra' has no folder in"):
        load_dataset(cfg(folder))


def test_empty_split(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    write_folder(tmp_path, {"test": {"a": 1}})
    with pytest.raises(DataError, match="train holds no images"):
        load_dataset(cfg(tmp_path))
