"""Inference engines: which runtime computes a model's forward pass (torch, ONNX Runtime float32 / int8),
the measured ``auto`` choice, and the length buckets batches are cut into. Models (students, teachers)
sit above and choose an engine by name."""
