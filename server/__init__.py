"""The model server: a lean Starlette app running an ONNX model with onnxruntime."""

__version__ = "0.1.0"
