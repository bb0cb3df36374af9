"""Stages: one module per dvc.yaml stage; each adds its options to the CLI (`add_arguments`) and has a
`main(params, args)` that reads as the stage's story."""
