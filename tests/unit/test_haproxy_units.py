"""HAProxy's generated config, its options, the runtime API's parsing, and its state-file entry,
without running HAProxy (tests/integration/test_haproxy.py runs the real one)."""

from __future__ import annotations

import pytest

from mpsoa_lab.plumbing.component import component_from_dict
from mpsoa_lab.plumbing.errors import HAProxyNotInstalled
from mpsoa_lab.plumbing.haproxy import (
    BalancerOptions,
    HAProxy,
    Server,
    find_haproxy,
    haproxy_config,
)
from mpsoa_lab.plumbing.haproxy_runtime import HAProxyRuntime, _server_states

SERVERS = {
    "mpwallet": [Server("w1", "127.0.0.1", 22001), Server("w2", "127.0.0.1", 22002)],
    "mplogin": [],
}


def config(**options) -> list[str]:
    text = haproxy_config(
        {"mpwallet": 23001, "mplogin": 23002},
        SERVERS,
        "/lab/admin.sock",
        BalancerOptions(**options),
    )
    return [line.strip() for line in text.splitlines()]


def test_a_frontend_per_service_on_loopback_and_its_backend():
    lines = config()
    assert "bind 127.0.0.1:23001" in lines and "bind 127.0.0.1:23002" in lines
    assert lines.count("frontend mpwallet") == 1 and "default_backend mpwallet" in lines
    assert "server w1 127.0.0.1:22001" in lines and "server w2 127.0.0.1:22002" in lines
    assert "backend mplogin" in lines  # a backend with no server yet: add server fills it
    assert not any(line.startswith("bind") and "127.0.0.1" not in line for line in lines)


def test_active_http_health_checks():
    lines = config(check_inter_ms=100, fall=3, rise=2)
    assert "option httpchk GET /health" in lines
    assert "http-check expect status 200" in lines
    assert "default-server check inter 100ms fall 3 rise 2" in lines


@pytest.mark.parametrize("balance", ["roundrobin", "leastconn"])
def test_the_balance_algorithm_is_chosen(balance):
    assert config(balance=balance).count(f"balance {balance}") == 2


def test_retries_redispatch_and_retry_on_are_settable():
    lines = config(retries=3, redispatch=False, retry_on="conn-failure empty-response")
    assert "retries 3" in lines and "no option redispatch" in lines
    assert "retry-on conn-failure empty-response" in lines
    default = config()
    assert "option redispatch" in default and not any(x.startswith("retry-on") for x in default)


def test_keep_alive_and_the_runtime_api_as_the_current_user():
    lines = config()
    assert "option http-keep-alive" in lines
    assert "stats socket /lab/admin.sock mode 600 level admin" in lines
    for word in ("daemon", "user", "group", "chroot", "pidfile", "log"):
        assert not any(line.split()[:1] == [word] for line in lines), word


def test_tcp_mode_relays_connections_with_connect_checks_and_backups():
    servers = [Server("node1", "127.0.0.1", 25001), Server("node2", "127.0.0.1", 25002, True)]
    text = haproxy_config(
        {"amqp": 23003}, {"amqp": servers}, "/lab/admin.sock", BalancerOptions(mode="tcp")
    )
    lines = [line.strip() for line in text.splitlines()]
    assert "mode tcp" in lines and "mode http" not in lines
    assert not any("http" in line for line in lines)  # no HTTP check, no keep-alive
    assert (
        "default-server check inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions" in lines
    )
    assert (
        "server node1 127.0.0.1:25001" in lines and "server node2 127.0.0.1:25002 backup" in lines
    )


def test_a_backup_server_cannot_be_added_at_run_time(tmp_path):
    balancer = HAProxy("h", tmp_path, {"amqp": []}, options=BalancerOptions(mode="tcp"),
                       executable="/usr/sbin/haproxy")  # fmt: skip
    with pytest.raises(ValueError, match="backup"):
        balancer.add_server("amqp", Server("n", "127.0.0.1", 1, True))


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "udp"},
        {"balance": "random"},
        {"balance": "static-rr"},  # not dynamic: add server would be refused
        {"retries": -1},
        {"check_inter_ms": 0},
        {"health_path": "health"},
        {"health_path": "/a b"},
        {"retry_on": " "},
    ],
)
def test_options_that_haproxy_would_refuse_are_refused_here(bad):
    with pytest.raises(ValueError):
        BalancerOptions(**bad)


# ``show servers state mplogin`` as HAProxy 2.6.12 answered it: two servers UP, a dynamic
# server just added (maintenance, checks configured but not enabled).
SHOW_SERVERS_STATE = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 mplogin 1 a 127.0.0.1 2 0 1 1 2 15 3 2 6 0 0 0 - 18091 - 0 0 - - 0\n"
    "3 mplogin 2 b 127.0.0.1 2 8 1 1 2 15 3 2 6 0 0 0 - 18092 - 0 0 - - 0\n"
    "3 mplogin 3 c 127.0.0.1 0 1 1 1 0 1 0 0 2 0 0 0 - 18093 - 0 0 - - 0\n\n"
)


def test_show_servers_state_is_parsed():
    a, b, c = _server_states(SHOW_SERVERS_STATE)
    assert (a.backend, a.server, a.addr, a.port) == ("mplogin", "a", "127.0.0.1", 18091)
    assert (a.status, a.up, a.checked) == ("UP", True, True)
    assert (b.status, b.up, b.drain) == ("DRAIN", False, True)
    assert (c.status, c.up, c.maint, c.checked) == ("MAINT", False, True, False)


def test_one_command_at_a_time():
    with pytest.raises(ValueError, match="one command"):
        HAProxyRuntime("/nowhere.sock").command("show info; show stat")


def test_the_state_file_entry_comes_back_as_haproxy():
    data = {
        "type": "haproxy",
        "name": "haproxy-1-1",
        "base_dir": "/lab/logs/haproxy-1-1",
        "ports": {"mpwallet": 23001},
        "owner": 1,
        "mark": "/lab",
        "process": None,
        "servers": {"mpwallet": [["w1", "127.0.0.1", 22001]]},
        "options": {"balance": "leastconn", "retries": 4},
        "executable": "/usr/sbin/haproxy",
    }
    balancer = component_from_dict(data)
    assert isinstance(balancer, HAProxy)
    assert balancer.servers == {"mpwallet": [Server("w1", "127.0.0.1", 22001)]}
    assert balancer.options == BalancerOptions(balance="leastconn", retries=4)
    assert balancer.url("mpwallet") == "http://127.0.0.1:23001"
    assert balancer.socket_path.name == "admin.sock" and not balancer.is_running()
    back = balancer.to_dict()
    assert back["servers"] == {"mpwallet": [["w1", "127.0.0.1", 22001, False]]}  # + backup
    assert back["options"]["balance"] == "leastconn" and back["options"]["mode"] == "http"
    assert component_from_dict({**data, **back}).servers == balancer.servers


def test_a_missing_haproxy_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr("mpsoa_lab.plumbing.haproxy._SEARCH_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MPSOA_HAPROXY", raising=False)
    with pytest.raises(HAProxyNotInstalled, match="(?s)haproxy is not installed.*Install it"):
        find_haproxy()
    monkeypatch.setenv("MPSOA_HAPROXY", str(tmp_path / "haproxy"))
    with pytest.raises(HAProxyNotInstalled, match="not an executable file"):
        find_haproxy()
