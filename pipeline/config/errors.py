"""UserError, the base of every error that means "your input is wrong"; ConfigError, and pydantic's validation
errors rewritten as one line per problem, each naming its dotted key.

A rule of the schema raises ``problem(...)``: a pydantic error of its own type that carries finished messages, so
they are printed as written rather than in pydantic's generic wording (which also names union members and links to
its documentation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

PROBLEM = "params_problem"
# tags of the tagged union of search-space dimensions: pydantic puts them in an error's location, a reader wants
# the keys of params.yaml only
UNION_TAGS = ("<range>", "<choice>")


class UserError(Exception):
    """Input that the pipeline cannot use (params, data, a model file, an option): the CLI prints the message alone,
    with no traceback, and exits with ``exit_code``. Every such error derives from it, and keeps its other bases
    (ValueError, RuntimeError) for callers that catch those."""

    exit_code = 1  # a subclass may say more: the promotion gate's verdict and transient faults (release/gate.py)


class UsageError(UserError):
    """Command-line arguments that parse but do not fit together or with params.yaml; the CLI reports it as
    argparse reports a usage error: the command's usage line, the message, exit status 2."""


class OptionError(UserError, ValueError):
    """A command-line option whose value the command cannot use; found before any work, and the message names the
    option, its value and what to give instead."""


class ConfigWarning(UserWarning):
    """A setting that is left out rather than refused (such as an alias of a class that classes no longer lists)."""


class ConfigError(UserError, ValueError):
    """params.yaml does not match the schema; the message has one line per problem, each naming its dotted key."""


def problem(message: str, *at: str | int) -> PydanticCustomError:
    """An error ``message`` about the value being validated, or about the key ``at`` below it."""
    return problems([(at, message)])


def problems(found: Iterable[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Several (key path below the value, message) problems found by one check, reported one line each."""
    found = tuple(found)
    return PydanticCustomError(PROBLEM, "; ".join(m for _, m in found), {"problems": found})


def dotted(*parts: str | int) -> str:
    """``train``, ``irv2``, ``unet``, ``decoder_filters``, 0 -> ``train.irv2.unet.decoder_filters[0]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "":
            out += f".{part}" if out else str(part)
    return out


def _message(kind: str, value: Any, error: ErrorDetails) -> str:
    expected = {
        "int_type": "int",
        "float_type": "a number",
        "string_type": "str",
        "bool_type": "bool (true or false)",
    }
    if kind in expected:
        return f"expected {expected[kind]}, got {value!r}"
    if kind == "missing":
        return "missing key"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "list_type":
        return f"expected a list, got {type(value).__name__} {value!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {type(value).__name__} {value!r}"
    if kind == "literal_error":
        return f"{value!r} is not one of {error.get('ctx', {}).get('expected', '').replace(' or ', ', ')}"
    if kind == "finite_number":
        return f"{value!r} is not a finite number"
    return error["msg"]


def located(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, what is wrong) per problem of ``exc``."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if part not in UNION_TAGS)
        kind = error["type"]
        if kind == PROBLEM:
            out += [((*loc, *at), message) for at, message in error["ctx"]["problems"]]
        elif loc[-1:] == ("[key]",):  # a mapping's key, not its value, has the wrong type (every key is a str)
            out.append(((*loc[:-2], str(loc[-2])), f"the key must be a string, got {error.get('input')!r}"))
        else:
            out.append((loc, _message(kind, error.get("input"), error)))
    return out


def lines(exc: ValidationError, *where: str | int) -> list[str]:
    """One ``dotted.key: what is wrong`` line per problem of ``exc``, the keys below ``where``."""
    return list(dict.fromkeys(f"{dotted(*where, *loc)}: {message}" for loc, message in located(exc)))


def config_error(exc: ValidationError, *where: str | int) -> ConfigError:
    return ConfigError("\n".join(lines(exc, *where)))
