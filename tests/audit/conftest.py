import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The CI box is 2 shared cores; one thread keeps the many small attack batches from fighting over them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
