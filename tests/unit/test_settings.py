"""Settings from the environment, URL redaction, and the errors for a missing server."""

from __future__ import annotations

import os

import pytest

from mpsoa_lab import RabbitMQNotInstalled, SettingsError
from mpsoa_lab.plumbing import install as install_mod
from mpsoa_lab.plumbing.node import free_port
from mpsoa_lab.plumbing.settings import load, management_url_for, redact_url, strip_credentials
from mpsoa_lab.running.lab import _make_home


def test_defaults_start_own_nodes(tmp_path):
    settings = load({"MPSOA_LAB_HOME": str(tmp_path)})
    assert settings.external is False
    assert settings.home == tmp_path.resolve()
    assert settings.data_dir == tmp_path.resolve() / "data"
    assert settings.start_timeout == 90.0 and settings.connect_timeout == 5.0


def test_default_home_is_a_cache_dir(tmp_path):
    assert load({"XDG_CACHE_HOME": str(tmp_path)}).home == (tmp_path / "mpsoa-lab").resolve()


def test_urls_from_the_environment():
    settings = load(
        {
            "MPSOA_SYNC_BROKER_URL": "amqp://u:secret@s:5673//",
            "MPSOA_ASYNC_BROKER_URL": "amqp://u:secret@a:5674//",
        }
    )
    assert settings.external
    assert settings.broker_url("async") == "amqp://u:secret@a:5674//"
    assert settings.management_url("sync") == "http://u:secret@s:15672/"


def test_storage_follows_the_space_whatever_the_brokers(tmp_path):
    urls = {"MPSOA_SYNC_BROKER_URL": "amqp://u:p@s//", "MPSOA_ASYNC_BROKER_URL": "amqp://u:p@a//"}
    home = {"MPSOA_LAB_HOME": str(tmp_path)}
    space = {**home, "MPSOA_SPACE": "nb-1"}
    assert load(space).data_dir == tmp_path.resolve() / "spaces" / "nb-1" / "data"
    assert load(space).vhost == "nb-1"
    # A worker of a lab with its own nodes, pointed at other brokers, keeps its space's storage.
    assert load({**space, **urls}).data_dir == tmp_path.resolve() / "spaces" / "nb-1" / "data"
    # Without a space (terminals; every process on brokers given by URL): the home, vhost /.
    assert load({**home, **urls}).data_dir == tmp_path.resolve() / "data"
    assert load(home).vhost == "/"


def test_explicit_management_url_wins():
    settings = load(
        {
            "MPSOA_SYNC_BROKER_URL": "amqp://u:p@s:5673//",
            "MPSOA_ASYNC_BROKER_URL": "amqp://u:p@a:5674//",
            "MPSOA_SYNC_MANAGEMENT_URL": "http://u:p@localhost:15673/",
        }
    )
    assert settings.management_url("sync") == "http://u:p@localhost:15673/"


def test_one_url_alone_is_an_error():
    with pytest.raises(ValueError, match="MPSOA_ASYNC_BROKER_URL is not"):
        load({"MPSOA_SYNC_BROKER_URL": "amqp://localhost//"})


def test_bad_number_is_an_error():
    with pytest.raises(ValueError, match="MPSOA_START_TIMEOUT"):
        load({"MPSOA_START_TIMEOUT": "soon"})


def test_redaction_hides_only_the_password():
    assert redact_url("amqp://mpsoa:s3cret@host:5673//") == "amqp://mpsoa:***@host:5673//"
    assert redact_url("amqp://host:5673//") == "amqp://host:5673//"
    assert strip_credentials("http://guest:guest@127.0.0.1:15672/") == "http://127.0.0.1:15672/"
    assert management_url_for("amqp://a:b@h:1//", 15673) == "http://a:b@h:15673/"


def test_missing_server_says_how_to_install(monkeypatch):
    monkeypatch.setattr(install_mod, "_SEARCH_DIRS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RabbitMQNotInstalled) as err:
        install_mod.find_rabbitmq_server()
    message = str(err.value)
    assert "rabbitmq-server is not installed" in message
    assert "docker compose up -d" in message and "MPSOA_SYNC_BROKER_URL" in message


def test_explicit_server_path_must_exist():
    with pytest.raises(
        RabbitMQNotInstalled, match="MPSOA_RABBITMQ_SERVER='/nonexistent/rabbitmq-server'"
    ):
        install_mod.find_rabbitmq_server("/nonexistent/rabbitmq-server")


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(10)]  # each reserved for this process until it ends
    assert len(set(ports)) == 10
    assert all(20000 <= p < 32768 for p in ports)  # below the ephemeral range


@pytest.mark.parametrize(
    "env, says",
    [
        ({"MPSOA_START_TIMEOUT": "abc"}, "MPSOA_START_TIMEOUT='abc' is not a number of seconds"),
        (
            {"MPSOA_SYNC_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"},
            "MPSOA_SYNC_BROKER_URL is set but MPSOA_ASYNC_BROKER_URL is not",
        ),
    ],
)
@pytest.mark.parametrize("command", ["status", "up", "env"])
def test_cli_says_what_setting_is_wrong_in_one_line(tmp_path, env, says, command):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MPSOA_")}
    result = subprocess.run(
        [sys.executable, "-m", "mpsoa_lab", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "MPSOA_LAB_HOME": str(tmp_path), **env},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("mpsoa-lab: ")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MPSOA_LAB_GRACE", "-1", "must be at least 0 seconds"),
        ("MPSOA_LAB_GRACE", "nan", "is not a number of seconds"),
        ("MPSOA_START_TIMEOUT", "0", "must be more than 0 seconds"),
        ("MPSOA_START_TIMEOUT", "inf", "is not a number of seconds"),
        ("MPSOA_CONNECT_TIMEOUT", "-5", "must be more than 0 seconds"),
        ("MPSOA_CONNECT_TIMEOUT", "soon", "is not a number of seconds"),
        ("MPSOA_SPACE", "../elsewhere", "is not a space name"),
        ("MPSOA_SPACE", "nb 1", "is not a space name"),
    ],
)
def test_a_bad_setting_gets_one_line_naming_it_and_a_value_that_works(tmp_path, name, value, says):
    with pytest.raises(SettingsError) as info:
        load({"MPSOA_LAB_HOME": str(tmp_path), name: value})
    message = str(info.value)
    assert f"{name}={value!r}" in message and says in message and "\n" not in message
    assert "such as" in message or "e.g." in message  # a value that works


def test_a_lab_home_that_is_a_file_or_cannot_be_made_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for home in (afile, afile / "below"):
        with pytest.raises(SettingsError, match="is a file, not a folder"):
            load({"MPSOA_LAB_HOME": str(home)})
    # made when the lab starts: a folder that cannot be made is one clear line, not a traceback
    with pytest.raises(SettingsError, match="cannot keep its files there"):
        _make_home(afile / "below")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder stops nobody
        with pytest.raises(SettingsError, match="cannot keep its files there"):
            _make_home(locked / "home")
