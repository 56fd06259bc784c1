"""docker-compose.secured.yml and ``python -m mpsoa_lab definitions`` agree: the files the
command writes are the ones the override mounts and interpolates, the brokers load the design's
users at boot, the lab and edge containers reach them as the administrator with the fresh
password, and nothing prints or commits a password. Docker is not needed: the files are read."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from mpsoa_lab.__main__ import main
from mpsoa_lab.design import access
from mpsoa_lab.plumbing import settings as settings_mod
from mpsoa_lab.running import compose_users

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {"sync": "rabbitmq-sync", "async": "rabbitmq-async"}
INTERPOLATION = re.compile(r"\$\{MPSOA_ADMIN_PASSWORD:\?([^}]+)\}")


@pytest.fixture(scope="module")
def base() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def override() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.secured.yml").read_text())


@pytest.fixture
def written(tmp_path) -> compose_users.Written:
    return compose_users.write(tmp_path / ".secrets")


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _verifies(password_hash: str, password: str) -> bool:
    raw = base64.b64decode(password_hash)
    return raw[4:] == hashlib.sha256(raw[:4] + password.encode()).digest()


def _targets(volumes: list[str]) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in volumes}


@pytest.mark.parametrize("role", BROKERS.values())
def test_each_broker_loads_the_written_definitions_at_boot(base, override, role):
    volumes = _targets(override["services"][role]["volumes"])
    conf = (ROOT / volumes["/etc/rabbitmq/conf.d/30-definitions.conf"]).read_text()
    loads = re.search(r"^load_definitions = (\S+)$", conf, re.M)[1]
    assert volumes[loads] == "./.secrets/definitions.json"  # where the command writes it
    assert _targets(base["services"][role]["volumes"]).items() <= volumes.items()  # kept
    assert ".secrets/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("service", ["lab", "edge"])
def test_the_containers_reach_the_brokers_as_the_administrator(override, written, service):
    password = _env_file(written.compose_env)["MPSOA_ADMIN_PASSWORD"]
    env = {
        k: INTERPOLATION.sub(password, v)
        for k, v in override["services"][service]["environment"].items()
    }
    settings = settings_mod.load(env)
    users = {u["name"]: u for u in json.loads(written.definitions.read_text())["users"]}
    for role, host in BROKERS.items():
        url = urlsplit(settings.broker_url(role))
        assert (url.username, url.password, url.hostname) == ("mpsoa", password, host)
        assert urlsplit(settings.management_url(role)).password == password
    assert _verifies(users["mpsoa"]["password_hash"], password)
    assert users["mpsoa"]["tags"] == "administrator"
    for role in BROKERS.values():  # the default user, were it made, gets the same password
        broker = override["services"][role]["environment"]
        assert INTERPOLATION.fullmatch(broker["RABBITMQ_DEFAULT_PASS"])


def test_without_the_password_compose_says_what_to_run(override):
    text = (ROOT / "docker-compose.secured.yml").read_text()
    messages = INTERPOLATION.findall(text)
    assert messages and all("python -m mpsoa_lab definitions" in m for m in messages)


def test_the_definitions_hold_the_design_s_users_vhost_and_no_guest(written):
    defs = json.loads(written.definitions.read_text())
    names = [u["name"] for u in defs["users"]]
    assert names == [*access.ROLES, "mpsoa"] and "guest" not in names
    assert defs["vhosts"] == [{"name": "/"}]  # boot-time definitions skip the default vhost
    perms = {p["user"]: p for p in defs["permissions"]}
    for role in access.ROLES:
        assert {
            k: perms[role][k] for k in ("configure", "write", "read")
        } == access.permissions_for(role)
    assert {t["exchange"] for t in defs["topic_permissions"]} == set(
        access.edge_topic_permissions()
    )
    host = _env_file(written.host_env)
    for role in access.ROLES:
        user = next(u for u in defs["users"] if u["name"] == role)
        assert _verifies(user["password_hash"], host[f"MPSOA_{role.upper()}_PASSWORD"])
    settings = settings_mod.load(host)
    assert settings.external and urlsplit(settings.broker_url("sync")).port == 5673


def test_the_files_are_private_and_every_run_makes_new_passwords(written):
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(written.folder) == 0o700 and mode(written.definitions) == 0o644
    assert mode(written.compose_env) == mode(written.host_env) == 0o600
    first = _env_file(written.host_env)
    written.folder.chmod(0o755)
    again = compose_users.write(written.folder)
    second = _env_file(again.host_env)
    assert first.keys() == second.keys() and mode(again.folder) == 0o700
    assert not set(first.values()) & set(second.values())  # every password and URL new


def test_the_command_prints_no_password(tmp_path, capsys):
    assert main(["definitions", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    for value in _env_file(tmp_path / "s" / "host.env").values():
        password = urlsplit(value).password if "://" in value else value
        assert password not in out
    assert "docker-compose.secured.yml" in out
