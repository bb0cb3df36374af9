"""The allowed values of params keys, as pydantic validators whose errors name the key's allowed values, and the
base of every section of params.yaml."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator, model_validator

from pipeline.config.errors import problem, problems

# Airflow's schedule presets (a cron expression or null are the other choices)
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _rule(check: Callable[[Any], str | None]) -> AfterValidator:
    """A validator from ``check``, which returns what is wrong with a value (None: nothing)."""

    def validate(value: Any) -> Any:
        wrong = check(value)
        if wrong:
            raise problem(wrong)
        return value

    return AfterValidator(validate)


def within(
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
    null: bool = False,
) -> AfterValidator:
    """``low <= value <= high`` (``above``: low itself excluded, ``below``: high itself excluded); ``null``: the key
    may also be null, which the message then offers."""
    left, right = ("(" if above else "["), (")" if below else "]")
    if low is not None and high is not None:
        allowed = f"{left}{low:g}, {high:g}{right}"
    elif low is not None:
        allowed = f"{'>' if above else '>='} {low:g}"
    else:
        allowed = f"{'<' if below else '<='} {high:g}"

    def check(value: Any) -> str | None:
        if value is None:
            return None
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and (value >= high if below else value > high)
        if not (too_low or too_high):
            return None
        if low is not None and high is not None:
            wrong = f"{value!r} is outside {allowed}"
            return f"{wrong} (allowed: null or {allowed})" if null else wrong
        relation = ("not above" if above else "below") if too_low else ("not below" if below else "above")
        bound = low if too_low else high
        return f"{value!r} is {relation} {bound:g} (allowed: {'null or ' if null else ''}{allowed})"

    return _rule(check)


def one_of(choices: Iterable[Any], what: str = "") -> AfterValidator:
    """The value is one of ``choices``; ``what`` says what they are, for the message."""
    choices = tuple(choices)

    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"{value!r} is not {what or 'allowed'} (one of {', '.join(map(str, choices))})"

    return _rule(check)


def nonempty(at_least: int = 1, unique: bool = False) -> AfterValidator:
    """A list or mapping with ``at_least`` entries (and, with ``unique``, no repeated list item)."""

    def check(value: Any) -> str | None:
        if len(value) < at_least:
            return f"give at least {'one value' if at_least == 1 else f'{at_least} values'}, got {len(value)}"
        if unique and len(set(value)) != len(value):
            repeated = sorted({v for v in value if list(value).count(v) > 1}, key=str)
            return f"names must be unique ({', '.join(map(str, repeated))} repeated)"
        return None

    return _rule(check)


def keys(*names: str) -> AfterValidator:
    """A mapping with exactly the keys ``names``."""
    wanted = " and ".join(f"'{n}'" for n in names)
    return _rule(lambda value: None if set(value) == set(names) else f"needs exactly the keys {wanted}")


def _regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        return f"{value!r} is not a valid regular expression: {exc}"
    return None


def _schedule(value: str | None) -> str | None:
    if value is None or value in PRESETS:
        return None
    from croniter import croniter  # Airflow's parser; here, not at the top: every command loads params, few a cron

    # five fields, as croniter parses them for Airflow (croniter alone would also take a sixth, of seconds)
    if len(value.split()) == 5 and croniter.is_valid(value):
        return None
    return f"{value!r} is not a cron expression (5 fields), an Airflow preset ({', '.join(PRESETS)}) or null"


def _target(value: Any) -> int | str:
    # one message for the whole union: pydantic would report each of its members' errors apart
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 or value in ("majority", "none"):
        return value
    raise problem(f"must be a positive integer, 'majority' or 'none', got {value!r}")


def _scalar(value: Any) -> int | float | str | bool:
    if isinstance(value, int | float | str | bool):
        return value
    raise problem(f"expected a number, a string or a boolean, got {value!r}")


regex = _rule(_regex)
extension = _rule(lambda v: None if re.fullmatch(r"\.\w+", v) else f"{v!r} is not a file extension such as .jpg")
# GTO's stage names: lower case, e.g. prod
stage_name = _rule(
    lambda v: None if re.fullmatch(r"[a-z][a-z0-9_-]*", v) else f"{v!r} is not a GTO stage name (lower case, e.g. prod)"
)
schedule = _rule(_schedule)
named = _rule(lambda v: None if v is None or v.strip() else "give a non-empty name")
target = PlainValidator(_target)
scalar = PlainValidator(_scalar)

Count = Annotated[int, within(1)]  # something there is at least one of: a batch, an epoch, a unit
Fraction = Annotated[float, within(0, 1, below=True)]  # of a whole, which itself is never allowed
Share = Annotated[float, within(0, 1)]  # a probability, or a metric in [0, 1]
Name = Annotated[str, named]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # before pydantic's own extra="forbid", which cannot suggest the key that was meant
        if isinstance(data, dict):
            names = list(cls.model_fields)
            unknown = [key for key in data if key not in cls.model_fields]

            def hint(key: Any) -> str:
                close = difflib.get_close_matches(str(key), names, n=1)
                return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"

            if unknown:
                raise problems(((key,), f"unknown key ({hint(key)})") for key in unknown)
        return data


def folder_problem(value: str) -> str | None:
    """Why ``value`` is not a plain folder name (one path component that stays where it is put), or None. Class names
    and their aliases become folders of the augment stage's output: ``../x`` or ``a/b`` would write elsewhere."""
    if not value.strip():
        return "empty"
    if "/" in value or "\\" in value:
        return "it holds a path separator"
    if value in (".", ".."):
        return "it names a folder itself, not one inside it"
    if value.startswith("."):
        return "it starts with a dot, which hides it"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "it holds a control character"
    return None


def _folder_message(value: str) -> str | None:
    why = folder_problem(value)
    if why is None:
        return None
    return (
        f"{value!r} is not a plain folder name ({why}); give a folder's own name, such as 'joy': no / or \\, "
        "not . or .., no leading dot, no control characters"
    )


def _folder_names(value: dict[str, str]) -> dict[str, str]:
    # keys (the folder names matched on disk) and values (class names) alike, one line per wrong entry
    wrong = [((alias,), message) for alias in value for message in (_folder_message(alias),) if message]
    wrong += [((alias,), message) for alias, name in value.items() for message in (_folder_message(name),) if message]
    if wrong:
        raise problems(wrong)
    return value


folder = _rule(_folder_message)
folder_names = AfterValidator(_folder_names)
Folder = Annotated[str, named, folder]  # a class or split folder name: one plain path component
