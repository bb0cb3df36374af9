"""Stages: one module per dvc.yaml stage; each has a `main(params, argv)` that reads as the stage's story."""
