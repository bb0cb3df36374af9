"""Commands that are not dvc.yaml stages: predict, export, promote, bench, sample-data. Each module has an
``add_arguments(parser)`` and a ``main(params, args)``; the CLI (pipeline/__main__.py) is what imports them."""
