"""How well an attack did, including what survives uint8 quantisation."""
from __future__ import annotations

import torch
from torch import nn

from trainer.attacks._ops import evaluating, flat_norm, model_device


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes of images in 0..255, batched on the model's device, returned on x's device."""
    device = model_device(model) or x.device
    with evaluating(model):
        return torch.cat([model(x[i : i + batch_size].to(device, torch.float32)).argmax(1).to(x.device)
                          for i in range(0, len(x), batch_size)])


def success_report(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 512) -> dict[str, float]:
    """Success rates (prediction != y) before and after rounding x_adv to uint8, and median norms.

    A camera stream carries uint8 frames, so only perturbations that survive rounding matter in
    deployment; small ones (DeepFool's) may not. `clean_error` is the rate already misclassified
    without attack; norms are medians over all samples, in 0..255 units.
    """
    x, y = x.float(), y.to(x.device)
    delta = x_adv.float() - x
    return {
        "n": len(x),
        "clean_error": (predict(model, x, batch_size) != y).float().mean().item(),
        "success": (predict(model, x_adv, batch_size) != y).float().mean().item(),
        "success_uint8": (predict(model, x_adv.round().clamp(0, 255), batch_size) != y).float().mean().item(),
        "median_l2": flat_norm(delta, 2).median().item(),
        "median_linf": flat_norm(delta, float("inf")).median().item(),
    }
