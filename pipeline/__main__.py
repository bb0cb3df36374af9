"""One CLI for every stage: ``python -m pipeline [--params FILE] <command> [options]`` (dvc.yaml calls these)."""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> module with a ``main(params, argv)``; imported lazily so `--help` and light commands stay fast.
COMMANDS = {
    "sample-data": "pipeline.data.sample_cli",
    "validate": "pipeline.validate",
    "augment": "pipeline.augment",
    "tune": "pipeline.tune",
    "train": "pipeline.train",
    "evaluate": "pipeline.evaluate",
    "predict": "pipeline.predict",
    "export": "pipeline.export",
    "promote": "pipeline.promote",
    "bench": "pipeline.bench",
}

# Errors that mean "your input is wrong", reported as one clear message rather than a traceback.
USER_ERRORS = (
    "pipeline.config.ConfigError",
    "pipeline.validate.ValidationFailed",
    "pipeline.data.images.ImageReadError",
    "pipeline.inference.ModelError",
    "pipeline.promote.GateFailed",
)


def _user_error_types() -> tuple[type, ...]:
    types = []
    for dotted in USER_ERRORS:
        module, name = dotted.rsplit(".", 1)
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return (*types, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    from pipeline import config

    try:
        params = config.load(ns.params)
        importlib.import_module(COMMANDS[ns.command]).main(params, ns.args)
    except _user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
