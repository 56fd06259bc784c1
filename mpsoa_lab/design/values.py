"""What a valid id, amount, balance and text field are: one definition for the whole platform.

The edge's request models and path parameters, the REST services' and the Celery tasks use
the same bounds, so a task published by anyone (a notebook, ``celery call``, a hostile
publisher) is refused with the same clear error the edge gives, and nothing is stored wrong.

**Numbers** are integers only: no bool, no float (so no NaN or infinity), no digit string in a
JSON body. Ids and amounts are 1 to 2**53 - 1 (:data:`MAX_EXACT`), a ledger entry -(2**53 - 1)
to 2**53 - 1 but not 0 (an entry that moves no money is a caller's bug, typically a field left
at its default, and the ledger is append-only: a wrong entry stays), and a balance (a wallet's,
or the sum of an account's entries) never goes past 2**53 - 1 either way: a deposit or entry
that would take it there is refused with :class:`LimitReached` and changes nothing. Why 2**53:
every such value stays exact as a JSON number a JavaScript client parses (a double holds every
integer up to 2**53), and far inside SQLite's 64-bit integers, so even the sum of two balances
cannot overflow into SQLite's floating point (which past 2**63 turned a balance into
``9.223372036854776e+18`` cents before these bounds).

**Text** is counted in characters (code points); each field has a maximum length. Refused
everywhere: control characters (Unicode ``Cc``: NUL, escapes, DEL) that logs and terminals act
on, and lone surrogates (``Cs``, e.g. ``"\\ud800"`` in JSON) that cannot be encoded as UTF-8,
so SQLite and the JSON serializer would fail on them. Also refused in names and ids (username,
account, entry_id, batch_id), not in passwords: format characters (``Cf``: bidirectional
overrides such as U+202E, which make a name display reversed, zero-width spaces and joiners,
which make two names look alike), and the line and paragraph separators (``Zl``, ``Zp``), which
break a line in a log. A username or account may not start or end with whitespace ("ada" and
"ada " would look the same); an account is a path segment of ``GET
/ledger/accounts/{account}/balance``, so it holds no ``/`` and is not ``.`` or ``..``.
Passwords accept everything else (spaces, emoji joined by U+200D), as NIST SP 800-63B asks.
Not handled: look-alike letters from other scripts (Cyrillic "а" for Latin "a") and Unicode
normalization; names are compared as given.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Annotated, Any, NamedTuple

from annotated_types import Interval
from pydantic import AfterValidator, BeforeValidator, Strict, StringConstraints

__all__ = [
    "MAX_EXACT",
    "TEXT_RULES",
    "TextRule",
    "InvalidInput",
    "LimitReached",
    "check_int",
    "check_id",
    "check_amount",
    "check_entry_cents",
    "check_total",
    "check_text",
    "describe",
    "json_safe",
    "UserId",
    "AmountCents",
    "EntryCents",
    "Username",
    "Password",
    "AccountName",
    "EntryId",
]

#: The largest integer a JSON number keeps exact in JavaScript (``Number.MAX_SAFE_INTEGER``):
#: the bound of every id, amount, entry and balance.
MAX_EXACT = 2**53 - 1

_BOUND = f"{MAX_EXACT} (2**53 - 1)"
_NAMES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})
_CATEGORY = {
    "Cc": "a control character",
    "Cs": "a lone surrogate, which UTF-8 cannot encode",
    "Cf": "a format character such as a bidirectional override or a zero-width space",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class InvalidInput(ValueError):
    """A value outside what the platform accepts; the message names the field, the value
    (or its type) and the bound. HTTP 422."""


class LimitReached(Exception):
    """A valid amount that would take a balance past :data:`MAX_EXACT`: refused, and the
    balance is unchanged. HTTP 409 (the request is fine, the resource's state refuses it)."""


class TextRule(NamedTuple):
    """What one text field accepts: its length, the Unicode categories it refuses, whether
    it may start or end with whitespace, and whether it is a URL path segment."""

    max_length: int
    refused: frozenset[str]
    trimmed: bool = False
    path_segment: bool = False


#: Text field -> its rule (the maximum lengths are the ones the edge always had).
TEXT_RULES: dict[str, TextRule] = {
    "username": TextRule(150, _NAMES, trimmed=True),
    "password": TextRule(200, frozenset({"Cc", "Cs"})),
    "account": TextRule(200, _NAMES, trimmed=True, path_segment=True),
    "entry_id": TextRule(200, _NAMES),
    "batch_id": TextRule(200, _NAMES),
}


def describe(value: Any) -> str:
    """The value for an error message: short, ASCII, never a huge number written out."""
    if isinstance(value, bool) or value is None:
        return f"{value!r} (a {type(value).__name__})"
    if isinstance(value, int):
        return (
            repr(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
        )
    if isinstance(value, float):
        return f"{value!r} (a float)"
    if isinstance(value, str):
        return (
            ascii(value)
            if len(value) <= 40
            else f"{ascii(value[:40])}... ({len(value)} characters)"
        )
    return f"a {type(value).__name__}"


def check_int(value: Any, field: str, low: int, high: int) -> int:
    """``value`` if it is an integer from ``low`` to ``high`` (not a bool, not a float)."""
    if type(value) is not int or not low <= value <= high:  # bool is an int subclass
        raise InvalidInput(
            f"{field} must be an integer from {low} to {high}, not {describe(value)}"
        )
    return value


def check_id(value: Any, field: str = "user_id") -> int:
    """An id: 1 to 2**53 - 1."""
    return check_int(value, field, 1, MAX_EXACT)


def check_amount(value: Any, field: str = "amount_cents") -> int:
    """A deposit or credit in cents: 1 to 2**53 - 1."""
    return check_int(value, field, 1, MAX_EXACT)


def check_entry_cents(value: Any, field: str = "amount_cents") -> int:
    """A ledger entry in cents: -(2**53 - 1) to 2**53 - 1, not 0."""
    if check_int(value, field, -MAX_EXACT, MAX_EXACT) == 0:
        raise InvalidInput(f"{field} must not be 0: an entry moves money, in or out")
    return value


def check_total(current: int, amount: int, what: str) -> int:
    """``current + amount`` if it stays within ±(2**53 - 1), else :class:`LimitReached`."""
    total = current + amount
    if abs(total) > MAX_EXACT:
        raise LimitReached(
            f"{what}: {current} + {amount} cents would be {total}, past the bound of "
            f"±{_BOUND}; refused, the balance stays {current}"
        )
    return total


def check_text(value: Any, field: str) -> str:
    """``value`` if it is a text the field's rule (:data:`TEXT_RULES`) accepts."""
    rule = TEXT_RULES[field]
    if not isinstance(value, str) or not 1 <= len(value) <= rule.max_length:
        raise InvalidInput(
            f"{field} must be a text of 1 to {rule.max_length} characters, not {describe(value)}"
        )
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category in rule.refused:
            raise InvalidInput(
                f"{field} must not contain {_CATEGORY[category]} (Unicode {category}): "
                f"U+{ord(char):04X} at position {i}"
            )
    if rule.trimmed and value != value.strip():
        raise InvalidInput(f"{field} must not start or end with whitespace: {describe(value)}")
    if rule.path_segment and ("/" in value or value in (".", "..")):
        raise InvalidInput(f"{field} is a URL path segment: no '/', and not '.' or '..'")
    return value


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as strict JSON (RFC 8259) can hold it: a non-finite float as its name, a lone
    surrogate escaped, a huge integer or any other object described in words."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 4096 else describe(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth < 16 and isinstance(value, (list, tuple)):
        return [json_safe(item, depth + 1) for item in value]
    if depth < 16 and isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    return describe(value)


def _from_path(value: Any) -> Any:
    """A path segment's id is written in decimal digits ("5", not "5.0", "+5" or "1_000")."""
    if not isinstance(value, str):
        return check_id(value)
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_EXACT)):
        raise InvalidInput(
            f"user_id must be an integer from 1 to {MAX_EXACT}, not {describe(value)}"
        )
    return int(value)


def _text(field: str) -> Any:
    rule = TEXT_RULES[field]
    return Annotated[
        str,
        Strict(),
        StringConstraints(min_length=1, max_length=rule.max_length),
        AfterValidator(lambda value: check_text(value, field)),
    ]


#: A user id, in a path (decimal digits) or as a JSON integer: 1 to 2**53 - 1.
UserId = Annotated[int, Interval(ge=1, le=MAX_EXACT), BeforeValidator(_from_path)]
#: A deposit in cents: a JSON integer from 1 to 2**53 - 1.
AmountCents = Annotated[int, Strict(), Interval(ge=1, le=MAX_EXACT)]
#: A ledger entry in cents: a JSON integer from -(2**53 - 1) to 2**53 - 1, not 0.
EntryCents = Annotated[
    int, Strict(), Interval(ge=-MAX_EXACT, le=MAX_EXACT), AfterValidator(check_entry_cents)
]
#: The text fields, each by its rule in :data:`TEXT_RULES`.
Username = _text("username")
Password = _text("password")
AccountName = _text("account")
EntryId = _text("entry_id")
