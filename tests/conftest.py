"""Fixtures shared by every test folder: a tiny trained classifier on a 16x16 task, and a guard that torch's
thread count is given back."""
import pytest
import torch

from detect.tiny_run import tiny_dataset as _tiny_dataset
from detect.tiny_run import train_classifier_file

THREADS = torch.get_num_threads()  # what torch starts with in this process


@pytest.fixture(scope="session")
def tiny_dataset():
    return _tiny_dataset()


@pytest.fixture(scope="session")
def classifier_file(tiny_dataset, tmp_path_factory):
    return train_classifier_file(tiny_dataset, tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module", autouse=True)
def _torch_threads_given_back():
    # A fixture that changes torch's thread count must restore it after its module: one that did not (tests/attacks,
    # at session scope) left every later test on one of the two cores.
    yield
    left = torch.get_num_threads()
    assert left == THREADS, f"torch runs on {left} threads after this module, not {THREADS}"
