"""The edge's pure parts, in process and without a broker: status mapping, validation, body limit.

No endpoint here reaches a service (the publishers connect on first use only); what needs a
broker is in tests/integration/test_edge.py, against the running edge.
"""

from __future__ import annotations

import pytest
from amqp.exceptions import ChannelError
from fastapi.testclient import TestClient

from mpsoa_lab.design.edge import ROUTES, EdgeConfig, EdgeError, create_app, error_status
from mpsoa_lab.design.naming import parse_task_name
from mpsoa_lab.design.sessions import authorization, issue, key_from_env

LIMIT = 1024


def _bearer(user_id: int, role: str = "user", ttl: float = 86_400) -> dict[str, str]:
    """A session of ``user_id`` signed with the test lab's key, as mplogin would issue it."""
    return authorization(issue(key_from_env(), user_id, role, ttl)[0])


#: Made at collection: valid for a day, since make test runs the unit tests last (~30 min on).
USER_1 = _bearer(1)


@pytest.fixture(scope="module")
def client() -> TestClient:
    config = EdgeConfig("amqp://guest:guest@127.0.0.1:1//", "amqp://guest:guest@127.0.0.1:1//")
    config.body_limit = LIMIT
    return TestClient(create_app(config), raise_server_exceptions=False)


def test_every_route_names_a_platform_task():
    for (method, path), task in ROUTES.items():
        parsed = parse_task_name(task)
        assert method in ("GET", "POST", "PUT", "DELETE") and path.startswith("/")
        assert (parsed.kind == "async") == (method == "POST" and path == "/ledger/entries")


def _named(exc_name: str, module: str = "builtins") -> BaseException:
    return type(exc_name, (Exception,), {"__module__": module})("boom")


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (_named("UsernameTaken"), 409),
        (_named("InvalidCredentials"), 401),
        (_named("WalletNotFound"), 404),
        (ValueError("x"), 422),
        (_named("TimeoutError", "celery.exceptions"), 504),
        (_named("NoRoute", "amqp.exceptions"), 502),
        (ChannelError("Basic.return: (312) NO_ROUTE", reply_code=312), 502),
        (ConnectionRefusedError(111, "refused"), 503),
        (_named("OperationalError", "kombu.exceptions"), 503),
        (KeyError("x"), 500),
    ],
)
def test_error_status(exc, status):
    error = error_status(exc)
    assert error.status == status
    assert ("Retry-After" in error.headers) == (status == 503)
    assert "Traceback" not in error.detail


def test_edge_error_body_names_the_task():
    assert EdgeError(504, "late", task_id="t1").body() == {"detail": "late", "task_id": "t1"}


def test_invalid_json_is_422(client):
    resp = client.post("/users", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "json_invalid"


def test_wrong_type_is_422_naming_the_field(client):
    resp = client.post("/wallets/1/deposits", json={"amount_cents": "12"}, headers=USER_1)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "amount_cents"]
    resp = client.get("/wallets/not-a-number/balance", headers=USER_1)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_missing_field_is_422(client):
    resp = client.post("/users", json={"username": "ada"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "password"]


def test_declared_body_over_the_limit_is_413(client):
    resp = client.post("/users", content=b"x" * (LIMIT + 1))
    assert resp.status_code == 413 and "bytes" in resp.json()["detail"]


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(4):
            yield b'{"pad": "' + b"x" * LIMIT + b'"}'

    resp = client.post("/users", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_unknown_resource_is_404(client):
    assert client.get("/nothing/here").status_code == 404
    assert client.delete("/users").status_code == 405


def test_health_answers_without_a_broker(client):
    resp = client.get("/health")
    assert resp.status_code == 200 and ":guest@" not in resp.text  # no password


@pytest.mark.parametrize(
    ("name", "unit"), [("MPSOA_EDGE_TIMEOUT", "seconds"), ("MPSOA_EDGE_BODY_LIMIT", "bytes")]
)
def test_a_setting_that_is_no_number_is_a_clear_error(monkeypatch, name, unit):
    from mpsoa_lab.design.edge.publishing import EdgeConfig
    from mpsoa_lab.plumbing import SettingsError

    monkeypatch.setenv("MPSOA_SYNC_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    monkeypatch.setenv("MPSOA_ASYNC_BROKER_URL", "amqp://guest:guest@127.0.0.1:2//")
    monkeypatch.setenv(name, "abc")
    with pytest.raises(SettingsError, match=f"{name}='abc' is not a number of {unit}"):
        EdgeConfig.from_env()


# -- the ways of waiting (issue 12, part 3) ---------------------------------------------------
def test_an_unknown_way_of_waiting_is_a_clear_settings_error():
    from mpsoa_lab.design.edge import WAITS, EdgeConfig
    from mpsoa_lab.plumbing.errors import SettingsError

    with pytest.raises(SettingsError, match="MPSOA_EDGE_WAIT='blocking'.*shared, threadpool"):
        EdgeConfig("amqp://a//", "amqp://b//", wait="blocking")
    assert [EdgeConfig("amqp://a//", "amqp://b//", wait=w).wait for w in WAITS] == list(WAITS)


def test_a_way_of_waiting_with_rest_urls_is_refused_not_ignored(monkeypatch):
    from mpsoa_lab.plumbing.errors import SettingsError
    from mpsoa_lab.running.edge import start_edge

    monkeypatch.setenv("MPSOA_SYNC_BROKER_URL", "amqp://a//")
    monkeypatch.setenv("MPSOA_ASYNC_BROKER_URL", "amqp://b//")
    monkeypatch.setenv("MPSOA_EDGE_REST_URLS", '{"mpwallet": "http://127.0.0.1:9"}')
    assert EdgeConfig.from_env().rest_urls == {"mpwallet": "http://127.0.0.1:9"}
    monkeypatch.setenv("MPSOA_EDGE_WAIT", "threadpool")
    with pytest.raises(
        SettingsError, match="MPSOA_EDGE_WAIT='threadpool' and MPSOA_EDGE_REST_URLS"
    ):
        EdgeConfig.from_env()
    with pytest.raises(SettingsError, match="unset one of them"):  # before anything starts
        start_edge(None, wait="shared", rest_urls={"mpwallet": "http://127.0.0.1:9"})


def test_each_way_of_waiting_has_its_platform():
    from mpsoa_lab.design.edge import PLATFORMS, WAITS, EdgeConfig, platform_for

    assert set(PLATFORMS) == set(WAITS)
    for wait in WAITS:
        assert platform_for(EdgeConfig("amqp://a//", "amqp://b//", wait=wait)).WAIT == wait


def test_fastapi_runs_a_def_endpoint_in_its_threadpool():
    """The threadpool platform claims to wait as a plain ``def`` endpoint does: FastAPI hands
    such an endpoint to ``run_in_threadpool``, the call the platform makes itself."""
    import inspect

    from fastapi import routing

    assert "run_in_threadpool" in inspect.getsource(routing.run_endpoint_function)


def test_a_reply_after_its_request_gave_up_is_late_and_answers_nobody():
    import asyncio

    from mpsoa_lab.design.edge import SharedReplies

    async def scenario() -> tuple[dict, int]:
        replies = SharedReplies("amqp://unused//")
        replies._loop = asyncio.get_running_loop()  # no consumer thread: replies handed in below
        answered, gave_up = replies.expect("a"), replies.expect("b")
        replies.forget("b")  # request b timed out
        replies._resolve("b", {"status": "SUCCESS", "result": 2})
        replies._resolve("a", {"status": "SUCCESS", "result": 1})
        assert not gave_up.done() and replies.in_flight() == 0
        return await answered, replies.late

    meta, late = asyncio.run(scenario())
    assert meta["result"] == 1 and late == 1


def test_the_rest_edge_gives_every_call_a_request_id_of_its_own():
    """An instance logs a call under the id it was sent, so a call HAProxy resends to a second
    instance shows as one id run twice (the duplicates notebook 09 counts)."""
    import asyncio

    import httpx

    from mpsoa_lab.design.edge.rest_platform import REQUEST_ID, RestPlatform

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get(REQUEST_ID, ""))
        return httpx.Response(200, json={"user_id": 1, "balance_cents": 7})

    async def two_calls() -> list:
        config = EdgeConfig("amqp://a//", "amqp://b//", rest_urls={"mpwallet": "http://w"})
        platform = RestPlatform(config)
        transport = httpx.MockTransport(answer)
        platform._clients = {
            "mpwallet": httpx.AsyncClient(base_url="http://w", transport=transport)
        }
        try:
            return [await platform.acall("mpwallet.sync.get_balance", user_id=1) for _ in range(2)]
        finally:
            await platform._clients["mpwallet"].aclose()

    assert asyncio.run(two_calls()) == [7, 7]
    assert len(seen) == 2 and all(len(s) == 32 for s in seen) and seen[0] != seen[1]


def test_the_openapi_declares_every_answer_typed_and_the_session_scheme(client):
    """The document is the contract: every status an endpoint can answer is declared with a
    typed body (a schema reference, never an untyped object); the endpoints that need a session
    say so, with 401 and 403; those that read a body declare 400, 413 and 422."""
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["session"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for status, answer in operation["responses"].items():
                if status == "204":
                    assert "content" not in answer, where
                    continue
                schema = answer["content"]["application/json"]["schema"]
                assert "$ref" in schema, (where, status, schema)
            guarded = path.startswith(("/wallets", "/ledger")) or path == "/sessions/current"
            assert (operation.get("security") == [{"session": []}]) == guarded, where
            if guarded:
                assert {"401", "403"} <= set(operation["responses"]), where
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(operation["responses"]), where
