"""Hosts of their own for a cluster's nodes: network namespaces the lab makes, links it can cut.

A node killed on one machine is *down*; every peer learns it at once (its connections close).
A network split is different: both sides run, their packets vanish, and each side learns that
the other is gone only when the Erlang distribution's ticks stop coming (``net_ticktime``). To
show that on one machine, each node of a cluster runs in a network namespace of its own:

* **Addresses from the loopback range only**: host ``k`` of network ``n`` is ``127.77.n.k``,
  so no packet ever leaves the machine. Each namespace has one veth link whose other end is a
  port of a bridge in the machine's own namespace; the bridge carries ``127.77.n.254``, the
  address the lab's clients (workers, publishers, the edge) reach the nodes from. Linux treats
  127/8 as local to ``lo`` and drops it on any other interface, so ``route_localnet`` is
  switched on for those interfaces only (inside each namespace, and on the bridge), and one
  route in the machine's ``local`` table sends ``127.77.n.0/24`` to the bridge (longer than
  the ``127.0.0.0/8`` it would otherwise match). Nothing else of the machine changes.
* **A split is silent**: :meth:`Network.cut` gives each side, for every address on the other
  side, a permanent neighbour entry with a hardware address no interface has. Frames still
  leave, the bridge floods them, and every receiver discards them: no RST, no ICMP, no error
  for the sender; TCP retransmits into the void, as across a broken switch. A link set down
  would not do: the sender learns at once ("no route to host", "connection refused"). We could
  not use ``tc netem loss 100%`` or nftables: this kernel has neither module (``tc`` answers
  "Specified qdisc kind is unknown"), and the neighbour table needs none. The lab's clients
  are not on either side: they reach every node through the bridge, and a notebook puts a
  client on one side by giving it that side's nodes only.
* **An epmd in each namespace**, started by the keeper (below) on the lab's epmd port: a
  node registers there, and its peers and the CLI find it at its address. Node names resolve
  through an Erlang ``inetrc`` file (``ERL_INETRC``) that names each host, not through the
  machine's ``/etc/hosts``, which the lab never touches.
* **One life cycle**: the network is made by a small keeper process
  (``python -m mpsoa_lab.plumbing.netns hold SPEC``), a component like any other: recorded in
  the state file with its owner, stopped by the reaper when the owner is gone. The keeper
  removes the network when it is asked to stop (SIGTERM, SIGINT, SIGHUP); when it is killed
  instead, :meth:`NetworkKeeper.kill` and the reaper remove it from outside
  (:meth:`Network.remove` is idempotent).

Needs root (namespaces, links) and ``ip`` from iproute2; :func:`unavailable` says in one line
why not, for a notebook to print.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .component import Component, NotReady
from .errors import LabError

__all__ = [
    "Network",
    "NetworkKeeper",
    "NetworkError",
    "unavailable",
    "lab_tag",
    "leftovers",
    "ip_path",
    "PREFIX",
]

#: The first two bytes of every address the lab gives a namespace (127.77.n.k).
PREFIX = "127.77"
#: Where the machine-wide choice of a free network number is serialised.
LOCK_FILE = Path("/tmp/mpsoa-netns.lock")
#: The hardware address a cut sends frames to: locally administered, owned by no interface.
NOWHERE_MAC = "02:00:00:00:0d:0d"
#: The interface inside each namespace.
INSIDE = "eth0"


class NetworkError(LabError):
    """A namespace, link or route the lab needs could not be made or changed."""


def lab_tag(home: Path | str) -> str:
    """Four hex digits that name one lab home's networks (in namespace and link names), so a
    leak check finds them and two labs on one machine never take each other's."""
    return hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:4]


def ip_path() -> str | None:
    """The ``ip`` command of iproute2, also where ``/usr/sbin`` is not on the path."""
    return shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    ip = ip_path()
    if ip is None:
        raise NetworkError("The 'ip' command (iproute2) was not found: apt-get install iproute2.")
    result = subprocess.run([ip, *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why the lab cannot make network namespaces here, in one line; None if it can."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux's, and this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root, and the lab runs as a user"
    try:
        probe = f"mpsoa-probe-{os.getpid()}"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"'ip netns add' failed: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
    except NetworkError as exc:
        return str(exc)
    return None


@dataclass
class Network:
    """One network of namespaces: its number ``n`` (addresses ``127.77.n.k``), its hosts."""

    tag: str  # lab tag, network number, 2 random hex digits: in every name of this network
    number: int
    hosts: list[int]
    epmd_port: int | None = None
    epmd: str | None = None

    # -- names and addresses -----------------------------------------------------------------
    def namespace(self, host: int) -> str:
        return f"mpsoa-{self.tag}-n{host}"

    def address(self, host: int) -> str:
        return f"{PREFIX}.{self.number}.{host}"

    def hostname(self, host: int) -> str:
        """The name of host ``host`` in node names (``rabbit@<hostname>``)."""
        return f"n{self.number}h{host}"

    @property
    def bridge(self) -> str:
        return f"mp{self.tag}br"

    def outside(self, host: int) -> str:
        return f"mp{self.tag}h{host}"

    @property
    def gateway(self) -> str:
        """The address of the bridge: where the lab's clients come from."""
        return f"{PREFIX}.{self.number}.254"

    @property
    def subnet(self) -> str:
        return f"{PREFIX}.{self.number}.0/24"

    def inetrc(self) -> str:
        """An Erlang ``inetrc`` that names every host of the network (``ERL_INETRC``)."""
        lines = [
            f'{{host, {{{self.address(h).replace(".", ",")}}}, ["{self.hostname(h)}"]}}.'
            for h in self.hosts
        ]
        return "\n".join([*lines, "{lookup, [file, native]}."]) + "\n"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Network:
        return cls(**json.loads(text))

    # -- making and removing -----------------------------------------------------------------
    def make(self) -> None:
        """Namespaces, links, addresses and the route; any half-made part removed on failure."""
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _sysctl(None, f"net.ipv4.conf.{self.bridge}.route_localnet")
            _ip("link", "set", self.bridge, "up")
            _ip(
                "route", "add", self.subnet, "dev", self.bridge, "table", "local",
                "scope", "link", "src", self.gateway,
            )  # fmt: skip
            for host in self.hosts:
                ns = self.namespace(host)
                _ip("netns", "add", ns)
                _ip("link", "add", self.outside(host), "type", "veth", "peer", "name", INSIDE,
                    "netns", ns)  # fmt: skip
                _ip("link", "set", self.outside(host), "master", self.bridge, "up")
                _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", INSIDE)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", INSIDE, "up")
                for key in ("all", INSIDE):
                    _sysctl(ns, f"net.ipv4.conf.{key}.route_localnet")
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        """Remove everything :meth:`make` made (what is already gone is skipped)."""
        for host in self.hosts:
            _ip("netns", "del", self.namespace(host), check=False)
            _ip("link", "del", self.outside(host), check=False)
        _ip("route", "del", self.subnet, "dev", self.bridge, "table", "local", check=False)
        _ip("link", "del", self.bridge, check=False)

    # -- splitting and healing ---------------------------------------------------------------
    def cut(self, side_a: Iterable[int], side_b: Iterable[int]) -> None:
        """Drop every packet between a host of ``side_a`` and one of ``side_b``, silently."""
        side_a, side_b = list(side_a), list(side_b)
        for a in side_a:
            for b in side_b:
                if a == b:
                    raise NetworkError(f"host {a} cannot be on both sides of a cut")
                for here, there in ((a, b), (b, a)):
                    _ip(
                        "-n", self.namespace(here), "neigh", "replace", self.address(there),
                        "lladdr", NOWHERE_MAC, "dev", INSIDE, "nud", "permanent",
                    )  # fmt: skip

    def heal(self) -> None:
        """Undo every cut: each namespace learns its peers' addresses again (ARP)."""
        for host in self.hosts:
            _ip("-n", self.namespace(host), "neigh", "flush", "dev", INSIDE, "nud", "permanent",
                check=False)  # fmt: skip

    def cut_pairs(self) -> list[tuple[int, int]]:
        """The pairs of hosts that cannot reach each other now, read from the kernel."""
        pairs = set()
        for host in self.hosts:
            out = _ip("-n", self.namespace(host), "neigh", "show", "dev", INSIDE, "nud",
                      "permanent", check=False).stdout  # fmt: skip
            for line in out.splitlines():
                if NOWHERE_MAC in line:
                    other = int(line.split()[0].rsplit(".", 1)[1])
                    pairs.add(tuple(sorted((host, other))))
        return sorted(pairs)

    def exec_prefix(self, host: int) -> list[str]:
        """The command prefix that runs a program inside host ``host``'s namespace."""
        return [ip_path() or "ip", "netns", "exec", self.namespace(host)]


def _sysctl(namespace: str | None, key: str, value: str = "1") -> None:
    """Set one sysctl, inside ``namespace`` or in the machine's own namespace."""
    path = "/proc/sys/" + key.replace(".", "/")
    if namespace is None:
        Path(path).write_text(value)
        return
    _ip("netns", "exec", namespace, "sh", "-c", f"echo {value} > {path}")


def namespaces() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def leftovers(tag: str) -> list[str]:
    """Namespaces and links of one lab tag (:func:`lab_tag`) that still exist (none where
    there is no ``ip`` to make them)."""
    if ip_path() is None:
        return []
    found = [ns for ns in namespaces() if ns.startswith(f"mpsoa-{tag}")]
    links = _ip("-o", "link", "show", check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"mp{tag}"):
            found.append(name)
    return found


def _free_number() -> int:
    """A network number no lab uses now: no ``127.77.n.0/24`` route in the local table."""
    used = set()
    for line in _ip("route", "show", "table", "local", check=False).stdout.splitlines():
        words = line.split()
        if words and words[0].startswith(PREFIX + "."):
            used.add(int(words[0].split(".")[2].split("/")[0]))
    for number in range(1, 254):
        if number not in used:
            return number
    raise NetworkError("All 253 networks 127.77.1-253.0/24 are in use: stop other labs first.")


class NetworkKeeper(Component):
    """The process that holds one :class:`Network`: makes it, runs an epmd in each namespace,
    and removes it all when stopped. Its spec is kept in the state file, so the network is
    removed even when the keeper was killed."""

    TYPE = "netns"
    FIELDS = ("spec",)
    STOP_ORDER = 10  # after the nodes (5) that run inside its namespaces
    STOP_TIMEOUT = 10.0

    def __init__(
        self,
        name: str,
        base_dir: Path,
        hosts: Iterable[int],
        *,
        home: Path,
        epmd_port: int,
        epmd: str,
        owner: int | None = None,
        mark: str | None = None,
    ):
        super().__init__(name, base_dir, owner=owner, mark=mark)
        self.home = Path(home)
        self.hosts = list(hosts)
        self.epmd_port = epmd_port
        self.epmd = epmd
        self.spec: str | None = None
        self.network: Network | None = None

    def make(self) -> Network:
        """Choose a free network number and make the network (once; before the keeper runs)."""
        if self.network is None:
            with open(LOCK_FILE, "a") as lock:  # one number per network, machine-wide
                fcntl.flock(lock, fcntl.LOCK_EX)
                number = _free_number()
                network = Network(
                    # Never the name of an earlier network: a late removal of that one (a
                    # reaper finishing its stop) must not take this one's namespaces.
                    f"{lab_tag(self.home)}{number:02x}{secrets.token_hex(1)}",
                    number,
                    self.hosts,
                    epmd_port=self.epmd_port,
                    epmd=self.epmd,
                )
                network.make()  # under the lock: the next one sees its route
            self.network, self.spec = network, network.to_json()
        return self.network

    def _restored(self) -> None:
        self.network = Network.from_json(self.spec) if self.spec else None

    @property
    def ready_file(self) -> Path:
        return self.base_dir / "ready"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "mpsoa_lab.plumbing.netns", "hold", str(self.spec)]

    def write_config(self) -> None:
        super().write_config()
        self.ready_file.unlink(missing_ok=True)
        self.inetrc_file.write_text(self.make().inetrc())

    @property
    def inetrc_file(self) -> Path:
        return self.base_dir / "inetrc"

    def probe(self) -> None:
        if not self.ready_file.exists():
            raise NotReady("the keeper has not started every namespace's epmd yet")

    def request_stop(self) -> None:
        if self.process is not None:
            self.process.send(signal.SIGTERM)

    def _after_stop(self, keep_ports: bool) -> None:
        super()._after_stop(keep_ports)  # its epmds (same process group) killed
        if self.network is not None:
            self.network.remove()


def hold(spec: str, ready: Path) -> int:
    """The keeper's life: an epmd in each namespace, ``ready`` written, then wait for a stop
    signal and remove the network."""
    network = Network.from_json(spec)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    epmds = []
    try:
        for host in network.hosts:
            argv = [*network.exec_prefix(host), network.epmd or "epmd"]
            argv += [
                "-port",
                str(network.epmd_port),
                "-address",
                f"127.0.0.1,{network.address(host)}",
            ]
            epmds.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))
        ready.write_text(network.to_json())
        print(f"network {network.subnet} ready: {len(network.hosts)} namespaces", flush=True)
        while not stopping:
            if any(p.poll() is not None for p in epmds):
                print("an epmd ended; removing the network", flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for proc in epmds:
            proc.terminate()
        for proc in epmds:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        network.remove()
        print(f"network {network.subnet} removed", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "hold":
        sys.exit(hold(sys.argv[2], Path.cwd() / "ready"))
    print("usage: python -m mpsoa_lab.plumbing.netns hold SPEC", file=sys.stderr)
    sys.exit(2)
