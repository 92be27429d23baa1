"""On-vehicle agent: watch a camera with an exported ONNX model and raise adversarial-perturbation alerts."""
