"""docker-compose.yml agrees with the lab: brokers, ports, credentials, and the URLs we print.

Docker is not needed: the file is read as YAML and compared with what the lab expects and
with what :func:`mpsoa_lab.plumbing.install.install_hint` tells people to export.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from mpsoa_lab.plumbing import settings as settings_mod
from mpsoa_lab.plumbing.install import install_hint
from mpsoa_lab.plumbing.settings import ROLES

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {"sync": "rabbitmq-sync", "async": "rabbitmq-async"}
#: Host ports the README and install_hint() promise: (AMQP, management UI/API).
HOST_PORTS = {"sync": (5673, 15673), "async": (5674, 15674)}
AMQP, MANAGEMENT = 5672, 15672


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _published(service: dict) -> dict[int, tuple[str, int]]:
    """container port -> (host IP, host port), from short ("ip:host:container") or long syntax."""
    out = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out[int(port["target"])] = (port.get("host_ip", "0.0.0.0"), int(port["published"]))
            continue
        parts = str(port).split("/")[0].split(":")
        assert len(parts) == 3, (
            f"{port!r}: give the host IP, so the port is not open to the network"
        )
        out[int(parts[2])] = (parts[0], int(parts[1]))
    return out


def _credentials(service: dict) -> tuple[str, str]:
    env = _env(service)
    return env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]


@pytest.mark.parametrize("role", ROLES)
def test_broker_runs_a_pinned_management_image(compose, role):
    service = compose["services"][BROKERS[role]]
    image = service["image"]
    assert re.fullmatch(r"rabbitmq:\d+\.\d+\.\d+-management", image), (
        f"{image!r}: pin an exact x.y.z-management tag (not latest, not 3, not 3.13)"
    )
    assert "profiles" not in service  # `docker compose up -d` starts the brokers


def test_both_brokers_run_the_same_image_and_credentials(compose):
    sync, async_ = (compose["services"][BROKERS[role]] for role in ROLES)
    assert sync["image"] == async_["image"]
    assert _credentials(sync) == _credentials(async_) == ("mpsoa", "mpsoa")


@pytest.mark.parametrize("role", ROLES)
def test_broker_has_a_health_check(compose, role):
    check = compose["services"][BROKERS[role]]["healthcheck"]
    test = check["test"]
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL")
        test = " ".join(test[1:])
    command = test
    assert re.search(
        r"rabbitmq-diagnostics( -q)? (ping|check_port_connectivity|check_running)", command
    )
    assert {"interval", "timeout", "retries"} <= set(check)


@pytest.mark.parametrize("role", ROLES)
def test_broker_ports_are_published_on_localhost_only(compose, role):
    amqp_port, management_port = HOST_PORTS[role]
    assert _published(compose["services"][BROKERS[role]]) == {
        AMQP: ("127.0.0.1", amqp_port),
        MANAGEMENT: ("127.0.0.1", management_port),
    }


def test_lab_service_is_optional_and_waits_for_healthy_brokers(compose):
    lab = compose["services"]["lab"]
    assert lab["profiles"] == ["lab"]
    assert {name: dep["condition"] for name, dep in lab["depends_on"].items()} == {
        name: "service_healthy" for name in BROKERS.values()
    }
    assert _published(lab) == {8888: ("127.0.0.1", 8888)}
    command = lab["command"] if isinstance(lab["command"], str) else " ".join(lab["command"])
    assert command.startswith("jupyter lab --ip 0.0.0.0 --no-browser --allow-root")
    assert command.endswith("notebooks/")


def test_lab_image_is_built_from_python_slim(compose):
    build = compose["services"]["lab"]["build"]
    dockerfile = ROOT / build.get("context", ".") / build["dockerfile"]
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install -r requirements\.txt", text)  # the lab's known-good versions
    assert re.search(r"^COPY requirements\.txt\b", text, re.M)


@pytest.mark.parametrize("role", ROLES)
def test_lab_service_points_at_the_compose_brokers(compose, role):
    env = _env(compose["services"]["lab"])
    user, password = _credentials(compose["services"][BROKERS[role]])
    amqp = urlsplit(env[f"MPSOA_{role.upper()}_BROKER_URL"])
    assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", BROKERS[role], AMQP)
    assert (amqp.username, amqp.password, amqp.path) == (user, password, "//")  # vhost "/"
    mgmt = urlsplit(env[f"MPSOA_{role.upper()}_MANAGEMENT_URL"])
    assert (mgmt.scheme, mgmt.hostname, mgmt.port) == ("http", BROKERS[role], MANAGEMENT)
    assert (mgmt.username, mgmt.password) == (user, password)


def test_lab_service_environment_makes_the_lab_use_those_brokers(compose):
    env = _env(compose["services"]["lab"])
    settings = settings_mod.load(env)
    assert settings.external
    for role in ROLES:
        assert settings.broker_url(role) == env[f"MPSOA_{role.upper()}_BROKER_URL"]
        assert settings.management_url(role) == f"http://mpsoa:mpsoa@{BROKERS[role]}:{MANAGEMENT}/"


def _hint_urls() -> dict[str, str]:
    found = dict(re.findall(r"export MPSOA_(SYNC|ASYNC)_BROKER_URL=(\S+)", install_hint()))
    return {role.lower(): url for role, url in found.items()}


@pytest.mark.parametrize("role", ROLES)
def test_install_hint_urls_match_the_published_ports(compose, role):
    assert "docker compose up -d" in install_hint()
    url = urlsplit(_hint_urls()[role])
    service = compose["services"][BROKERS[role]]
    host_ip, host_port = _published(service)[AMQP]
    assert url.hostname in ("localhost", host_ip)
    assert url.port == host_port
    assert (url.username, url.password) == _credentials(service)


def test_install_hint_environment_makes_the_lab_external():
    env = {f"MPSOA_{role.upper()}_BROKER_URL": url for role, url in _hint_urls().items()}
    settings = settings_mod.load(env)
    assert settings.external
    assert settings.broker_url("sync") != settings.broker_url("async")


@pytest.mark.parametrize("role", ROLES)
def test_install_hint_environment_finds_the_published_management_api(compose, role):
    hint = install_hint()
    env = dict(re.findall(r"export (MPSOA_\w+)=(\S+)", hint))
    management = urlsplit(settings_mod.load(env).management_url(role))
    assert management.port == _published(compose["services"][BROKERS[role]])[MANAGEMENT][1]


def _broker_mounts(compose: dict, role: str) -> dict[str, str]:
    """Where in the container each file the compose broker mounts goes -> the file here."""
    service = compose["services"][f"rabbitmq-{role}"]
    return {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}


@pytest.fixture
def lab_node_files(tmp_path):
    """The folder where a lab node wrote its configuration files (nothing started)."""
    from mpsoa_lab.plumbing.node import RabbitMQNode

    node = RabbitMQNode(
        "x",
        tmp_path,
        epmd_port=1,
        erlang_home=tmp_path,
        amqp_port=1,
        management_port=2,
        dist_port=3,
    )
    node.write_config()
    return tmp_path


@pytest.mark.parametrize("role", ROLES)
def test_compose_brokers_refresh_statistics_like_the_lab_nodes(compose, role, lab_node_files):
    """Queue depths over time are read from the management API: same interval everywhere."""
    conf_d = _broker_mounts(compose, role)["/etc/rabbitmq/conf.d/20-mpsoa.conf"]

    def settings(text: str) -> set[str]:
        return {
            line.strip()
            for line in text.splitlines()
            if line.strip()
            and not line.lstrip().startswith("#")
            and line.split("=")[0].strip().startswith(("collect_statistics", "management.sample"))
        }

    docker = settings((ROOT / conf_d).read_text())
    assert "collect_statistics_interval = 1000" in docker
    assert docker == settings((lab_node_files / "rabbitmq.conf").read_text())


@pytest.mark.parametrize("role", ROLES)
def test_compose_brokers_enable_every_plugin_of_the_lab_nodes(compose, role, lab_node_files):
    """The management API and the event exchange: what the notebooks read a broker with."""
    mounts = _broker_mounts(compose, role)

    def plugins(text: str) -> set[str]:
        return set(re.findall(r"\w+", text.strip().rstrip(".")))

    lab = plugins((lab_node_files / "enabled_plugins").read_text())
    assert {"rabbitmq_management", "rabbitmq_event_exchange"} <= lab
    assert lab <= plugins((ROOT / mounts["/etc/rabbitmq/enabled_plugins"]).read_text())


def test_edge_service_is_optional_serves_the_edge_on_localhost_and_waits_for_brokers(compose):
    edge = compose["services"]["edge"]
    assert edge["profiles"] == ["edge"]
    assert {name: dep["condition"] for name, dep in edge["depends_on"].items()} == {
        name: "service_healthy" for name in BROKERS.values()
    }
    assert _published(edge) == {8000: ("127.0.0.1", 8000)}
    command = edge["command"] if isinstance(edge["command"], str) else " ".join(edge["command"])
    assert "uvicorn --factory mpsoa_lab.design.edge:create_app" in command
    assert command.endswith("--port 8000")
    assert "/health" in " ".join(edge["healthcheck"]["test"])
    assert edge["build"] == compose["services"]["lab"]["build"]  # the lab's image


@pytest.mark.parametrize("role", ROLES)
def test_edge_service_points_at_the_compose_brokers(compose, role):
    env, lab_env = _env(compose["services"]["edge"]), _env(compose["services"]["lab"])
    for key in (f"MPSOA_{role.upper()}_BROKER_URL", f"MPSOA_{role.upper()}_MANAGEMENT_URL"):
        assert env[key] == lab_env[key]
    assert settings_mod.load(env).external


def test_edge_image_has_the_edge_requirements():
    pinned = (ROOT / "requirements.txt").read_text()
    for package in ("fastapi", "uvicorn", "httpx"):
        assert re.search(rf"^{package}==\d", pinned, re.M), f"pin {package} in requirements.txt"


def test_the_edge_checks_the_sessions_the_lab_s_mplogin_signs(compose):
    """The edge and the lab (where mplogin's workers run) are separate containers with lab homes
    of their own: they share one session key, as the install hint tells a terminal to."""
    from mpsoa_lab.design.sessions import issue, key_from_env, verify

    edge, lab = _env(compose["services"]["edge"]), _env(compose["services"]["lab"])
    assert edge["MPSOA_SESSION_KEY"] == lab["MPSOA_SESSION_KEY"]
    token, session = issue(key_from_env(lab), 1, "user", 60)  # as the lab's mplogin signs it
    assert verify(key_from_env(edge), token) == session  # ... the edge's check takes it
    hint = (ROOT / "docker-compose.yml").read_text()
    assert f"export MPSOA_SESSION_KEY={lab['MPSOA_SESSION_KEY']}" in hint
