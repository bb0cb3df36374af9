"""Commands that are not dvc.yaml stages: predict, export, promote, bench, sample-data."""
