"""Serving half of the project: FastAPI + onnxruntime, never torch."""
