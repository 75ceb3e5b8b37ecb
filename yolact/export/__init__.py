"""Deployment formats: ONNX export and running exported models."""
