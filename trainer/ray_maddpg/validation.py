"""One small vocabulary of value checks, shared by the env options, the experiment file, the
algorithm config and the CLI.

A check takes a value and returns ``None`` when it is allowed, else what is allowed ("must be a
positive integer"); ``problem`` adds the value that was given. ``problems`` judges a mapping of
values and returns ``ConfigError``'s (dotted field, message) pairs. No Ray, mpe2 or torch here:
the batched envs use it on a machine without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Check = Callable[[Any], str | None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value > 0 else "must be a positive integer"


def int_at_least(low: int) -> Check:
    def check(value: Any) -> str | None:
        return None if _is_int(value) and value >= low else f"must be an integer >= {low}"

    return check


def number_above(low: float, *, strict: bool = False) -> Check:
    """A number >= ``low`` (> with ``strict``)."""

    def check(value: Any) -> str | None:
        ok = _is_number(value) and (value > low if strict else value >= low)
        return None if ok else f"must be a number {'>' if strict else '>='} {low}"

    return check


def number_in(low: float, high: float, *, open_low: bool = False) -> Check:
    """A number in [low, high] (or (low, high] with ``open_low``)."""

    def check(value: Any) -> str | None:
        ok = _is_number(value) and (value > low if open_low else value >= low) and value <= high
        return None if ok else f"must be a number in {'(' if open_low else '['}{low}, {high}]"

    return check


def number(value: Any) -> str | None:
    return None if _is_number(value) else "must be a number"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"

    return check


def _or_value(accepted: Any, shown: str, check: Check) -> Check:
    """``check``, or the value ``accepted`` (named ``shown`` in the message)."""

    def check_or_value(value: Any) -> str | None:
        message = None if value == accepted else check(value)
        return None if message is None else message.replace("must be", f"must be {shown} or", 1)

    return check_or_value


def optional(check: Check) -> Check:
    """``check``, or null."""
    return _or_value(None, "null", check)


def auto_or(check: Check) -> Check:
    """``check``, or the string "auto" (a setting computed from others)."""
    return _or_value("auto", "'auto'", check)


def list_of(check: Check, what: str, *, non_empty: bool = True) -> Check:
    """A list (or tuple; non-empty unless told) whose items pass ``check``; ``what`` names them."""

    def check_list(value: Any) -> str | None:
        ok = isinstance(value, list | tuple) and (bool(value) or not non_empty)
        ok = ok and all(check(v) is None for v in value)
        return None if ok else f"must be a {'non-empty ' if non_empty else ''}list of {what}"

    return check_list


def problem(check: Check, value: Any) -> str | None:
    """``check``'s message with the given value appended, or None."""
    message = check(value)
    return None if message is None else f"{message} (got {value!r})"


def problems(
    values: Mapping[str, Any],
    checks: Mapping[str, Check],
    prefix: str = "",
    names: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    """(``prefix`` + name, message) for every value (or every one of ``names``) its check refuses."""
    found = []
    for name in values if names is None else names:
        if name in checks and (message := problem(checks[name], values[name])) is not None:
            found.append((f"{prefix}{name}", message))
    return found
