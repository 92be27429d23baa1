"""Classifiers with attachment points, and the adversary detector."""
from trainer.models.detector import DetectedClassifier, Detector, paper_pools
from trainer.models.resnet import ResNet
from trainer.models.tapped import TappedClassifier

__all__ = ["DetectedClassifier", "Detector", "ResNet", "TappedClassifier", "paper_pools"]
