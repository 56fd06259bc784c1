"""The platform's one definition of a valid id, amount, balance and text, at and past each bound.

Each value goes through the check function a task calls and through the edge's pydantic model
(or path type): both must accept and refuse the same values, so the edge never answers 202 for
an entry the task then refuses as invalid.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from mpsoa_lab.design.edge.app import Amount, Credentials, Entry
from mpsoa_lab.design.edge.errors import NON_FINITE, validation_details
from mpsoa_lab.design.values import (
    MAX_EXACT,
    TEXT_RULES,
    AccountName,
    InvalidInput,
    LimitReached,
    UserId,
    check_amount,
    check_entry_cents,
    check_id,
    check_text,
    check_total,
    describe,
    json_safe,
)

NAN, INF = float("nan"), float("inf")
# Values no integer field accepts, whatever its bounds.
NOT_INTEGERS = [True, False, 1.0, 2.5, NAN, INF, -INF, "5", None, [1], b"5"]


def accepts(check, value) -> bool:
    try:
        check(value)
    except (InvalidInput, ValidationError):
        return False
    return True


def short(value) -> str:
    return describe(value)


def model_accepts(model: type[BaseModel], **fields) -> bool:
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True


AMOUNTS = [(1, True), (MAX_EXACT, True), (0, False), (-1, False), (MAX_EXACT + 1, False),
           (2**63, False), (10**400, False)] + [(v, False) for v in NOT_INTEGERS]  # fmt: skip
ENTRIES = [(1, True), (-1, True), (MAX_EXACT, True), (-MAX_EXACT, True), (0, False),
           (MAX_EXACT + 1, False), (-MAX_EXACT - 1, False), (2**63, False),
           (-(2**63), False)] + [(v, False) for v in NOT_INTEGERS]  # fmt: skip


@pytest.mark.parametrize(("value", "ok"), AMOUNTS, ids=short)
def test_an_amount_is_an_integer_from_1_to_2_53_minus_1(value, ok):
    assert accepts(check_amount, value) is ok
    assert model_accepts(Amount, amount_cents=value) is ok


@pytest.mark.parametrize(("value", "ok"), ENTRIES, ids=short)
def test_an_entry_is_any_nonzero_integer_within_2_53_minus_1(value, ok):
    assert accepts(check_entry_cents, value) is ok
    assert model_accepts(Entry, entry_id="e", account="a", amount_cents=value) is ok


@pytest.mark.parametrize(("value", "ok"), AMOUNTS, ids=short)
def test_an_id_has_the_bounds_of_an_amount(value, ok):
    assert accepts(check_id, value) is ok
    path_text = value == "5"  # the path's type reads a path segment's digits
    assert accepts(TypeAdapter(UserId).validate_python, value) is (ok or path_text)


@pytest.mark.parametrize(
    ("segment", "ok"),
    [("1", True), (str(MAX_EXACT), True), (str(MAX_EXACT + 1), False), (str(2**63), False),
     ("0", False), ("-1", False), ("5.0", False), ("+5", False), ("1_000", False), (" 5", False),
     ("\u0663", False), ("nan", False), ("1" * 5000, False), ("", False)],
)  # fmt: skip
def test_an_id_in_a_path_is_written_in_decimal_digits(segment, ok):
    try:
        value = TypeAdapter(UserId).validate_python(segment)
    except ValidationError:
        assert not ok
    else:
        assert ok and value == int(segment)


def test_a_refusal_names_the_field_the_value_and_the_bound():
    with pytest.raises(InvalidInput) as caught:
        check_amount(NAN)
    assert str(caught.value) == (
        "amount_cents must be an integer from 1 to 9007199254740991, not nan (a float)"
    )
    with pytest.raises(InvalidInput, match=r"user_id .* not True \(a bool\)"):
        check_id(True)
    with pytest.raises(InvalidInput, match="an integer of 1329 bits") as huge:
        check_amount(10**400)  # never written out: a message stays short
    assert len(str(huge.value)) < 100
    with pytest.raises(InvalidInput, match="must not be 0"):
        check_entry_cents(0)
    assert isinstance(InvalidInput("x"), ValueError)  # `except ValueError` still catches it


def test_a_balance_stops_at_the_bound_both_ways():
    assert check_total(MAX_EXACT - 5, 5, "w") == MAX_EXACT
    assert check_total(-MAX_EXACT + 5, -5, "a") == -MAX_EXACT
    with pytest.raises(LimitReached, match="the balance stays 9007199254740986"):
        check_total(MAX_EXACT - 5, 6, "w")
    with pytest.raises(LimitReached):
        check_total(-MAX_EXACT, -1, "a")
    assert not isinstance(LimitReached("x"), ValueError)  # a valid value, a full balance


NAMES = ["username", "account", "entry_id", "batch_id"]
CONTROL = ["\x00", "\n", "\t", "\x1b", "\x7f", "\u0085"]  # Cc
FORMAT = ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u00ad"]  # Cf: bidi, zero-width


@pytest.mark.parametrize("field", [*NAMES, "password"])
def test_every_text_refuses_control_characters_and_lone_surrogates(field):
    for bad in [*CONTROL, "\ud800", "\udfff"]:
        assert not accepts(lambda v, f=field: check_text(v, f), f"ab{bad}c"), repr(bad)
    for ok in ["ada", "Zoë", "名前", "a b", "x" * TEXT_RULES[field].max_length]:
        assert check_text(ok, field) == ok
    for bad in ["", "x" * (TEXT_RULES[field].max_length + 1), b"ada", 5, None]:
        assert not accepts(lambda v, f=field: check_text(v, f), bad)


@pytest.mark.parametrize("field", NAMES)
def test_a_name_or_id_refuses_format_characters_and_separators(field):
    for bad in [*FORMAT, "\u2028", "\u2029"]:
        with pytest.raises(InvalidInput, match=f"U\\+{ord(bad):04X} at position 2"):
            check_text(f"ab{bad}c", field)


def test_a_password_takes_format_characters_and_spaces():
    for ok in [" pass word ", "correct\u200dhorse", "\u202epw", "👩\u200d💻"]:
        assert check_text(ok, "password") == ok


def test_names_have_no_whitespace_around_them_and_accounts_are_one_path_segment():
    for field in ("username", "account"):
        for bad in [" ada", "ada ", "\u00a0ada", "ada\u3000"]:
            assert not accepts(lambda v, f=field: check_text(v, f), bad), (field, bad)
    assert check_text(" split-000001", "entry_id")  # an id is a key: two_brokers pads its ids
    for bad in ["a/b", ".", ".."]:
        assert not accepts(lambda v: check_text(v, "account"), bad)
    assert check_text("a.b?c#d%e", "account") == "a.b?c#d%e"


@pytest.mark.parametrize(
    "value",
    ["ada", "ada\x00", "a\u202eb", "\ud800", " ada", "x" * 151, "", 5, None, NAN, b"ada"],
    ids=short,
)
def test_the_edge_models_accept_exactly_what_the_tasks_accept(value):
    for field, model, other in [
        ("username", Credentials, {"password": "pw"}),
        ("password", Credentials, {"username": "ada"}),
        ("entry_id", Entry, {"account": "a", "amount_cents": 1}),
        ("account", Entry, {"entry_id": "e", "amount_cents": 1}),
    ]:
        task = accepts(lambda v, f=field: check_text(v, f), value)
        assert model_accepts(model, **{field: value}, **other) is task, (field, value)
    assert accepts(TypeAdapter(AccountName).validate_python, value) is accepts(
        lambda v: check_text(v, "account"), value
    )


def test_describe_and_json_safe_never_write_what_json_or_utf8_cannot_hold():
    assert describe("\ud800\x00") == "'\\ud800\\x00'" and describe(INF) == "inf (a float)"
    assert describe("x" * 500).endswith("(500 characters)") and len(describe("x" * 500)) < 70
    hostile = {"a": [NAN, -INF, 1.5, "\ud800", 2**5000, b"x", True, None], 3: {"k": 7}}
    text = json.dumps(json_safe(hostile), allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert json.loads(text) == {
        "a": ["nan", "-inf", 1.5, "\\ud800", "an integer of 5001 bits", "a bytes", True, None],
        "3": {"k": 7},
    }


def test_a_422_body_keeps_fastapi_shape_and_never_echoes_nan_or_surrogates():
    errors = [
        {"type": "int_type", "loc": ("body", "amount_cents"), "msg": "bad", "input": NAN},
        {"type": "string_unicode", "loc": ("body", "username"), "msg": "bad", "input": "\ud800"},
        {"type": "value_error", "loc": ("path", "user_id"), "msg": "bad", "input": "9" * 500,
         "ctx": {"error": InvalidInput("user_id must be ...")}},
        {"type": "less_than_equal", "loc": ("body", "amount_cents"), "msg": "too big",
         "input": 2**63, "ctx": {"le": MAX_EXACT}},
    ]  # fmt: skip
    details = validation_details(errors)
    json.dumps(details, allow_nan=False, ensure_ascii=False).encode("utf-8")  # no error
    assert [d["loc"] for d in details][0] == ["body", "amount_cents"]
    assert NON_FINITE in details[0]["msg"] and "input" not in details[0]
    assert details[1]["input"] == "\\ud800"  # escaped, as text
    assert "input" not in details[2] and details[2]["ctx"] == {"error": "user_id must be ..."}
    assert details[3]["input"] == 2**63 and details[3]["ctx"] == {"le": MAX_EXACT}
