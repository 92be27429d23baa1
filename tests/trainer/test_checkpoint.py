import torch

from trainer import checkpoint


def test_the_same_weights_save_to_the_same_bytes_wherever_they_go(tmp_path):
    """A checkpoint's sha256 seeds and stamps later stages (the audit's random starts), so it may depend on
    nothing but what is saved: not on the temp file's random name."""
    state = {"state_dict": {"w": torch.arange(12.0).view(3, 4)}, "epoch": 4}
    checkpoint.save(state, tmp_path / "a.pt")
    checkpoint.save(state, tmp_path / "sub-dir-b.pt")
    assert checkpoint.sha256(tmp_path / "a.pt") == checkpoint.sha256(tmp_path / "sub-dir-b.pt")
    assert torch.equal(checkpoint.load(tmp_path / "a.pt")["state_dict"]["w"], state["state_dict"]["w"])
