"""Bad input against the edge and the REST services in process: every answer a clear 4xx.

Numbers JSON forbids but Python's parser accepts (NaN, Infinity), integers past every bound,
control and bidirectional characters, lone surrogates, bodies that are not UTF-8. No request
here reaches a service: the edge's publishers would connect on first use only, and the REST
apps run on a stand-in (tests/unit/test_rest_units.py).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from mpsoa_lab.design.edge import EdgeConfig, create_app, error_status
from mpsoa_lab.design.edge.errors import NON_FINITE
from mpsoa_lab.design.edge.rest_platform import RestPlatform
from mpsoa_lab.design.rest import RestConfig, create_app as rest_app, rest_error
from mpsoa_lab.design.sessions import authorization, issue, key_from_env
from mpsoa_lab.design.values import MAX_EXACT, InvalidInput, LimitReached

DEPOSIT = "/wallets/1/deposits"
CREDENTIALS = '{"username": %s, "password": %s}'
ENTRY = '{"entry_id": %s, "account": %s, "amount_cents": %s}'

# (what, method, path, raw body or None): each must answer a 4xx, never a 500.
BAD = [
    ("NaN", "POST", DEPOSIT, '{"amount_cents": NaN}'),
    ("Infinity", "POST", DEPOSIT, '{"amount_cents": Infinity}'),
    ("-Infinity", "POST", DEPOSIT, '{"amount_cents": -Infinity}'),
    ("2**63", "POST", DEPOSIT, '{"amount_cents": 9223372036854775808}'),
    ("2**53", "POST", DEPOSIT, f'{{"amount_cents": {MAX_EXACT + 1}}}'),
    ("5000 digits", "POST", DEPOSIT, '{"amount_cents": 1' + "0" * 5000 + "}"),
    ("a float", "POST", DEPOSIT, '{"amount_cents": 1e3}'),
    ("a bool", "POST", DEPOSIT, '{"amount_cents": true}'),
    ("NaN as the body", "POST", DEPOSIT, "NaN"),
    ("NaN in a list", "POST", DEPOSIT, "[NaN]"),
    ("path id 2**63", "GET", "/wallets/9223372036854775808/balance", None),
    ("path id 2**53", "PUT", "/wallets/9007199254740992", None),
    ("path id 0", "GET", "/wallets/0/echo", None),
    ("path id 5.0", "GET", "/wallets/5.0/balance", None),
    ("path id NaN", "POST", "/wallets/NaN/deposits", '{"amount_cents": 1}'),
    ("NUL in a username", "POST", "/users", CREDENTIALS % ('"ada\\u0000"', '"pw"')),
    ("ESC in a username", "POST", "/users", CREDENTIALS % ('"\\u001b[31mada"', '"pw"')),
    ("bidi override", "POST", "/users", CREDENTIALS % ('"\\u202eada"', '"pw"')),
    ("zero-width space", "POST", "/sessions", CREDENTIALS % ('"a\\u200bda"', '"pw"')),
    ("line separator", "POST", "/users", CREDENTIALS % ('"a\\u2028da"', '"pw"')),
    ("lone surrogate name", "POST", "/users", CREDENTIALS % ('"\\ud800"', '"pw"')),
    ("lone surrogate password", "POST", "/sessions", CREDENTIALS % ('"ada"', '"p\\udfffw"')),
    ("NaN as a username", "POST", "/users", CREDENTIALS % ("NaN", '"pw"')),
    ("not UTF-8", "POST", "/users", b'{"username": "\xff\xfe", "password": "pw"}'),
    ("Latin-1", "POST", "/users", '{"username": "Zoë", "password": "pw"}'.encode("latin-1")),
    ("entry of 0", "POST", "/ledger/entries", ENTRY % ('"e"', '"a"', "0")),
    ("entry of NaN", "POST", "/ledger/entries", ENTRY % ('"e"', '"a"', "NaN")),
    ("entry past -2**53", "POST", "/ledger/entries", ENTRY % ('"e"', '"a"', -(2**53))),
    ("surrogate entry id", "POST", "/ledger/entries", ENTRY % ('"\\udc00"', '"a"', "1")),
    ("account with /", "POST", "/ledger/entries", ENTRY % ('"e"', '"a/b"', "1")),
    ("bidi account", "GET", "/ledger/accounts/%E2%80%AEa/balance", None),
    ("NUL account", "GET", "/ledger/accounts/a%00/balance", None),
]

SERVICE = {"/wallets": "mpwallet", "/users": "mplogin", "/sessions": "mplogin"}


class StandIn:
    """A service that answers everything: no bad request may reach it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def execute(self, task_name, kwargs, **_):
        self.calls.append((task_name, kwargs))
        return 0


@pytest.fixture(scope="module")
def edge() -> TestClient:
    config = EdgeConfig("amqp://guest:guest@127.0.0.1:1//", "amqp://guest:guest@127.0.0.1:1//")
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def rest() -> dict[str, tuple[TestClient, StandIn]]:
    apps = {}
    for service in ("mplogin", "mpwallet", "mpledger"):
        standin = StandIn()
        app = rest_app(RestConfig(service, instance=f"{service}-test"), service=standin)
        apps[service] = (TestClient(app, raise_server_exceptions=False), standin)
    return apps


#: Made at collection, so valid for a day (make test runs the unit tests ~30 min later).
#: Sessions the edge lets through to validation: wallet 1's owner, and an operator for the
#: ledger (signed with the test lab's key; the REST services take no session).
_SESSIONS = {
    "/wallets": authorization(issue(key_from_env(), 1, "user", 86_400)[0]),
    "/ledger": authorization(issue(key_from_env(), 2, "operator", 86_400)[0]),
}


def _send(client: TestClient, method: str, path: str, body: str | bytes | None) -> httpx.Response:
    content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    headers = {"content-type": "application/json"} if body is not None else {}
    headers.update(next((h for prefix, h in _SESSIONS.items() if path.startswith(prefix)), {}))
    return client.request(method, path, content=content, headers=headers)


def _clear_4xx(answer: httpx.Response) -> dict:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert "Traceback" not in answer.text
    return json.loads(answer.content.decode("utf-8"))  # strict JSON, valid UTF-8


@pytest.mark.parametrize(("what", "method", "path", "body"), BAD, ids=[b[0] for b in BAD])
def test_the_edge_answers_bad_input_with_a_4xx(edge, what, method, path, body):
    _clear_4xx(_send(edge, method, path, body))


@pytest.mark.parametrize(("what", "method", "path", "body"), BAD, ids=[b[0] for b in BAD])
def test_a_rest_service_answers_bad_input_with_a_4xx(rest, what, method, path, body):
    service = next((s for prefix, s in SERVICE.items() if path.startswith(prefix)), "mpledger")
    client, standin = rest[service]
    _clear_4xx(_send(client, method, path, body))
    assert standin.calls == []  # refused before the service's code runs


def test_a_non_finite_number_is_told_json_has_none(edge):
    detail = _clear_4xx(_send(edge, "POST", DEPOSIT, '{"amount_cents": NaN}'))["detail"]
    assert detail[0]["loc"] == ["body", "amount_cents"] and NON_FINITE in detail[0]["msg"]
    assert "input" not in detail[0]


def test_a_422_names_the_field_and_the_bound(edge):
    past = _send(edge, "POST", DEPOSIT, '{"amount_cents": 9223372036854775808}')
    detail = _clear_4xx(past)["detail"][0]
    assert past.status_code == 422 and detail["loc"] == ["body", "amount_cents"]
    assert detail["ctx"] == {"le": MAX_EXACT} and str(MAX_EXACT) in detail["msg"]
    path = _clear_4xx(_send(edge, "GET", "/wallets/9223372036854775808/balance", None))
    assert path["detail"][0]["loc"] == ["path", "user_id"] and str(MAX_EXACT) in str(path)
    bidi = _clear_4xx(_send(edge, "POST", "/users", CREDENTIALS % ('"\\u202eada"', '"pw"')))
    assert bidi["detail"][0]["loc"] == ["body", "username"] and "U+202E" in str(bidi)


def test_a_body_that_is_not_utf8_is_a_400(edge):
    answer = _send(edge, "POST", "/users", b'{"username": "\xff", "password": "pw"}')
    assert answer.status_code == 400  # FastAPI's: "There was an error parsing the body"


def test_a_rest_service_takes_every_bound_itself(rest):
    client, standin = rest["mpwallet"]
    assert client.post(
        f"/wallets/{MAX_EXACT}/deposits", json={"amount_cents": MAX_EXACT}
    ).is_success
    client, standin = rest["mpledger"]
    entry = {"entry_id": " padded-1", "account": "a.b?c", "amount_cents": -MAX_EXACT}
    assert client.post("/ledger/entries", json=entry).status_code == 200
    assert client.get("/ledger/entries/count", params={"account": "a\u202e"}).status_code == 422
    assert standin.calls == [("mpledger.async.record_entry", entry)]


def test_the_services_refusals_are_422_and_409_on_both_sides():
    for exc, status in [(InvalidInput("x"), 422), (LimitReached("x"), 409)]:
        assert error_status(exc).status == status and rest_error(exc).status == status
    # across the broker the class may be a look-alike: matched by name
    look_alike = type("LimitReached", (Exception,), {"__module__": "celery.exceptions"})("x")
    assert error_status(look_alike).status == 409


def test_the_rest_edge_sends_an_account_as_one_path_segment():
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"account": "x", "balance_cents": 3})

    async def call() -> int:
        config = EdgeConfig("amqp://a//", "amqp://b//", rest_urls={"mpledger": "http://l"})
        platform = RestPlatform(config)
        transport = httpx.MockTransport(answer)
        platform._clients = {
            "mpledger": httpx.AsyncClient(base_url="http://l", transport=transport)
        }
        try:
            return await platform.acall("mpledger.sync.balance", account="a?b#c%d e")
        finally:
            await platform._clients["mpledger"].aclose()

    assert asyncio.run(call()) == 3
    assert seen == ["/ledger/accounts/a%3Fb%23c%25d%20e/balance"]
