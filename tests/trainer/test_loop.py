import pytest
import torch
from torch import nn

from trainer.loop import train_epochs

# A guard's numbers over six epochs: a collapse at epoch 3 (catastrophic overfitting), then epochs that the
# 500-image guard cannot tell from the best (0.85) by more than its standard error.
GUARD = [0.80, 0.85, 0.40, 0.84, 0.60, 0.836]


def _kept_epoch(tmp_path, tolerance: float) -> tuple[int, float]:
    model = nn.Linear(1, 1)

    def run_epoch(epoch: int, gen: torch.Generator) -> dict:
        with torch.no_grad():
            model.bias.fill_(epoch + 1)  # the weights say which epoch made them
        return {"val_robust_acc": GUARD[epoch]}

    kept = train_epochs(model, {}, run_epoch, epochs=len(GUARD), seed=0, device=torch.device("cpu"),
                        select="val_robust_acc", state_path=tmp_path / "last.pt", metrics_path=tmp_path / "m.jsonl",
                        label="test", tolerance=tolerance, log=lambda _: None)
    return int(model.bias.item()), kept


@pytest.mark.parametrize("tolerance, epoch", [(0.0, 2), (0.02, 6), (0.005, 2)])
def test_the_latest_epoch_within_tolerance_of_the_best_is_kept_and_a_collapse_never(tmp_path, tolerance, epoch):
    kept_epoch, kept_value = _kept_epoch(tmp_path, tolerance)
    assert kept_epoch == epoch
    assert kept_value == GUARD[epoch - 1]
