"""Evaluation: the published matting metrics, dataset evaluation and the benchmark."""
