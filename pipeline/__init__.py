"""Facial-emotion training pipeline: DVC stages for validation, balancing, tuning, training and evaluation."""
