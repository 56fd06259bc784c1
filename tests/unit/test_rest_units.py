"""The REST instances' app in process, on a stand-in service: routes, statuses, headers, knobs.

No service module is loaded here (that needs a lab or the broker URLs): the app is given an
object with the one method it calls, ``execute``. The real services behind real uvicorn
instances are in tests/integration/test_rest.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from mpsoa_lab.design.edge import REST_CALLS, ROUTES as EDGE_ROUTES
from mpsoa_lab.design.naming import parse_task_name
from mpsoa_lab.design.rest import ROUTES, RestConfig, create_app, rest_error
from mpsoa_lab.plumbing.errors import SettingsError, UnknownService


def _named(exc_name: str) -> Exception:
    return type(exc_name, (Exception,), {})("boom")


class StandIn:
    """Answers like a service would; records each call; raises what it is told to."""

    def __init__(self, answers: dict[str, object] | None = None):
        self.answers = answers or {}
        self.calls: list[tuple[str, dict, str | None, str | None]] = []
        self.running = self.most = 0
        self._lock = threading.Lock()

    def execute(self, task_name, kwargs, *, task_id=None, hostname=None, delay=0.0, record=True):
        with self._lock:
            self.calls.append(
                (task_name, kwargs, task_id, hostname) + (() if record else ("unrecorded",))
            )
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02 + delay)  # the instance's delay is waited inside the run
            answer = self.answers.get(task_name)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            with self._lock:
                self.running -= 1


def client(service: str, standin: StandIn, **knobs) -> TestClient:
    config = RestConfig(service, instance=f"{service}-test", **knobs)
    return TestClient(create_app(config, service=standin), raise_server_exceptions=False)


def test_every_route_runs_a_task_of_its_own_service():
    for service, routes in ROUTES.items():
        for (method, path), task in routes.items():
            assert parse_task_name(task).service == service
            assert method in ("GET", "POST", "PUT") and path.startswith("/")


def test_every_edge_endpoint_has_the_same_path_on_its_service():
    """The edge can forward a request as it came: same method, same path, same task; but log
    out, whose token the edge reads from a header and sends the service in a body."""
    for (method, path), task in EDGE_ROUTES.items():
        service = parse_task_name(task).service
        if (method, path) == ("DELETE", "/sessions/current"):
            continue
        assert ROUTES[service].get((method, path)) == task, (method, path)


def test_every_call_of_the_rest_edge_is_served_by_its_service():
    for task, (method, path, _, _) in REST_CALLS.items():
        assert ROUTES[parse_task_name(task).service].get((method, path)) == task, task


def test_echo_runs_the_task_alone_unrecorded():
    standin = StandIn({"mpwallet.sync.echo": 7})
    resp = client("mpwallet", standin, delay_ms=500).get("/wallets/7/echo")
    assert resp.status_code == 200 and resp.json() == {"user_id": 7, "echoed": 7}
    assert (
        resp.elapsed.total_seconds() < 0.5
    )  # the instance's delay is the service's work: not here
    assert standin.calls == [("mpwallet.sync.echo", {"user_id": 7}, None, None, "unrecorded")]


def test_a_call_runs_the_task_under_the_request_id_and_the_instance_name():
    standin = StandIn({"mpwallet.sync.deposit": 250})
    resp = client("mpwallet", standin).post(
        "/wallets/7/deposits", json={"amount_cents": 250}, headers={"X-Request-ID": "req-1"}
    )
    assert resp.status_code == 200 and resp.json() == {"user_id": 7, "balance_cents": 250}
    assert resp.headers["x-instance"] == "mpwallet-test"
    assert resp.headers["x-request-id"] == "req-1"
    assert standin.calls == [
        ("mpwallet.sync.deposit", {"user_id": 7, "amount_cents": 250}, "req-1", "mpwallet-test")
    ]


def test_a_request_without_an_id_gets_a_new_one_each_time():
    standin = StandIn({"mpledger.sync.balance": 0})
    http = client("mpledger", standin)
    ids = [http.get("/ledger/accounts/a/balance").headers["x-request-id"] for _ in range(3)]
    assert len(set(ids)) == 3 and [call[2] for call in standin.calls] == ids


@pytest.mark.parametrize(
    ("service", "method", "path", "body", "task", "exc", "status"),
    [
        ("mplogin", "POST", "/users", {"username": "a", "password": "b"},
         "mplogin.sync.register", _named("UsernameTaken"), 409),
        ("mplogin", "POST", "/sessions", {"username": "a", "password": "b"},
         "mplogin.sync.authenticate", _named("InvalidCredentials"), 401),
        ("mpwallet", "GET", "/wallets/1/balance", None,
         "mpwallet.sync.get_balance", _named("WalletNotFound"), 404),
        ("mpwallet", "POST", "/wallets/1/deposits", {"amount_cents": 1},
         "mpwallet.sync.deposit", ValueError("no"), 422),
        ("mpledger", "GET", "/ledger/entries/count", None,
         "mpledger.sync.entry_count", sqlite3.OperationalError("database is locked"), 503),
        ("mpledger", "GET", "/ledger/accounts/x/balance", None,
         "mpledger.sync.balance", KeyError("x"), 500),
    ],
)  # fmt: skip
def test_a_service_exception_is_its_status(service, method, path, body, task, exc, status):
    resp = client(service, StandIn({task: exc})).request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert ("retry-after" in resp.headers) == (status == 503)
    assert "Traceback" not in resp.text and "detail" in resp.json()


def test_rest_error_is_the_edge_status_without_the_broker():
    assert rest_error(_named("UsernameTaken")).status == 409
    busy = rest_error(sqlite3.OperationalError("database is locked"))
    assert busy.status == 503 and int(busy.headers["Retry-After"]) > 0
    # the edge would call an OSError "the broker cannot be reached": here there is no broker
    assert rest_error(ConnectionRefusedError(111, "refused")).status == 500


def test_validation_is_422_naming_the_field():
    http = client("mpwallet", StandIn())
    wrong = http.post("/wallets/1/deposits", json={"amount_cents": "12"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "amount_cents"]
    assert http.post("/wallets/1/deposits", json={"amount_cents": 0}).status_code == 422
    path = http.get("/wallets/not-a-number/balance")
    assert path.status_code == 422 and path.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_a_body_over_the_limit_is_413():
    http = client("mplogin", StandIn(), body_limit=100)
    assert http.post("/users", json={"username": "x" * 200, "password": "p"}).status_code == 413


def test_each_app_serves_its_own_service_only():
    http = client("mplogin", StandIn())
    assert http.get("/wallets/1/balance").status_code == 404
    assert http.get("/health").json()["service"] == "mplogin"


def test_an_entry_is_201_when_stored_and_200_when_it_was_already():
    task = "mpledger.async.record_entry"
    body = {"entry_id": "e1", "account": "a", "amount_cents": 5}
    assert (
        client("mpledger", StandIn({task: True})).post("/ledger/entries", json=body).status_code
        == 201
    )
    again = client("mpledger", StandIn({task: False})).post("/ledger/entries", json=body)
    assert again.status_code == 200 and again.json() == {"entry_id": "e1", "first": False}


def test_the_delay_slows_every_call_but_not_health():
    http = client("mpledger", StandIn({"mpledger.sync.balance": 0}), delay_ms=150)
    started = time.perf_counter()
    assert http.get("/ledger/accounts/a/balance").status_code == 200
    assert time.perf_counter() - started >= 0.15
    health = http.get("/health")
    assert health.json()["delay_ms"] == 150


def test_concurrency_bounds_the_calls_running_at_once():
    standin = StandIn({"mpledger.sync.balance": 0})
    http = client("mpledger", standin, concurrency=1)
    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(lambda _: http.get("/ledger/accounts/a/balance").status_code, range(8))
        )
    assert codes == [200] * 8 and standin.most == 1


def test_config_from_the_environment():
    config = RestConfig.from_env(
        {"MPSOA_REST_SERVICE": "mpwallet", "MPSOA_REST_INSTANCE": "w1", "MPSOA_REST_DELAY_MS": "40"}
    )
    assert (config.service, config.instance, config.delay_ms, config.concurrency) == (
        "mpwallet", "w1", 40.0, 0
    )  # fmt: skip
    with pytest.raises(SettingsError, match="MPSOA_REST_SERVICE is not set"):
        RestConfig.from_env({})
    with pytest.raises(SettingsError, match="MPSOA_REST_DELAY_MS='slow' is not a number"):
        RestConfig.from_env({"MPSOA_REST_SERVICE": "mpwallet", "MPSOA_REST_DELAY_MS": "slow"})
    with pytest.raises(UnknownService):
        RestConfig("mpbank")
    with pytest.raises(ValueError):
        RestConfig("mpwallet", delay_ms=-1)
