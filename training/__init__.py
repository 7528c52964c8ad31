"""Training: fit a scikit-learn model, export it to ONNX, prove parity, register it in MLflow."""
