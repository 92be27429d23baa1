"""Classifiers with attachment points, and the adversary detectors."""
from trainer.models.detector import DetectedClassifier, Detector, ImageNetDetector, build_detector, paper_pools
from trainer.models.resnet import ResNet
from trainer.models.tapped import TappedClassifier

__all__ = ["DetectedClassifier", "Detector", "ImageNetDetector", "ResNet", "TappedClassifier", "build_detector", "paper_pools"]
