"""The detector stage (Sec. 3.2, 3.3): static and dynamic detector training, evaluation, calibration."""
from trainer.detect.stage import attach, ensure_detector, run_detector_stage

__all__ = ["attach", "ensure_detector", "run_detector_stage"]
