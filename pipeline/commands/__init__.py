"""Commands that are not dvc.yaml stages: predict, export, promote, bench, sample-data."""


class OptionError(ValueError):
    """A command-line option whose value the command cannot use; found before any work, and the message names the
    option, its value and what to give instead."""
