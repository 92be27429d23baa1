import pytest
from synthetic import write_learnable_cifar


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """A learnable task in the official CIFAR-10 python format (600 train / 200 test images)."""
    return write_learnable_cifar(tmp_path_factory.mktemp("cifar"))

