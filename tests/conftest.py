"""Fixtures shared by the detector and experiment tests: a tiny trained classifier on a 16x16 task."""
import pytest

from detect.tiny_run import tiny_dataset as _tiny_dataset
from detect.tiny_run import train_classifier_file


@pytest.fixture(scope="session")
def tiny_dataset():
    return _tiny_dataset()


@pytest.fixture(scope="session")
def classifier_file(tiny_dataset, tmp_path_factory):
    return train_classifier_file(tiny_dataset, tmp_path_factory.mktemp("classifier"))
