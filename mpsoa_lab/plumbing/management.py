"""A small client of the RabbitMQ management HTTP API: broker state as the broker itself reports it.

The notebooks declare exchanges, queues and bindings with kombu; this module reads them back
from the broker (``/api/exchanges``, ``/api/queues``, ``/api/bindings``), so what a notebook
shows is what RabbitMQ holds, not what the client believes it declared.

>>> mgmt = Management.for_broker(lab.sync)          # doctest: +SKIP
>>> mgmt.topology(prefix="mplogin")["bindings"]     # doctest: +SKIP
[{'source': 'mplogin', 'destination': 'mplogin.async', 'destination_type': 'queue',
  'routing_key': 'mplogin.async.#', 'arguments': {}}, ...]

Every failure to reach the API raises :class:`~mpsoa_lab.plumbing.errors.ManagementAPIUnavailable`
within ``timeout`` seconds, naming the URL without its password and saying what to do.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

from .errors import EntityNotFound, LabError, ManagementAPIUnavailable
from .settings import redact_url

__all__ = ["Management", "EntityNotFound", "is_builtin", "declared"]

#: Seconds to wait for the API to accept a connection, and again for it to answer.
DEFAULT_TIMEOUT = 5.0
#: What a request answered with 404 returns when the caller said that is fine.
_MISSING = object()


def is_builtin(name: str) -> bool:
    """True for the default exchange (``""``) and RabbitMQ's own ``amq.*`` exchanges and queues."""
    return name == "" or name.startswith("amq.")


def declared(queue: dict[str, Any]) -> dict[str, Any]:
    """A queue of the API with ``arguments`` as its client declared them: RabbitMQ 4 lists
    ``x-queue-type: classic`` among every classic queue's arguments, filled in by the server
    whether or not the client sent it, where 3.x lists none; the queue's ``type`` says the same.
    The API's own list stays under ``server_arguments``."""
    arguments = queue.get("arguments") or {}
    if arguments.get("x-queue-type") != "classic":
        return queue
    client = {k: v for k, v in arguments.items() if k != "x-queue-type"}
    return {**queue, "arguments": client, "server_arguments": arguments}


def _is_loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_rabbitmq_not_found(resp: requests.Response) -> bool:
    """RabbitMQ's own 404 (``{"error": "Object Not Found", ...}``), not a stranger's."""
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") in ("Object Not Found", "not_found")


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a requests error, without urllib3's wrapping."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if match:
        return match.group(0).strip()
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    return text.split(" (Caused by")[0][:200]


class Management:
    """The management HTTP API of one broker, e.g. ``Management("http://guest:guest@127.0.0.1:15672/")``.

    Credentials come from the URL (default ``guest``/``guest``); the URL may carry a path
    prefix (``management.path_prefix``). ``role`` ("sync" or "async") only makes error
    messages name the environment variable to set.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        role: str | None = None,
        vhost: str | None = None,
    ):
        #: The vhost that calls without one act on: the lab's space on a shared node.
        self.vhost = vhost or "/"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{redact_url(url)!r} is not a management API URL; expected "
                "http://user:password@host:15672/"
            )
        self.url = url
        self.role = role
        self.timeout = timeout
        self.user = unquote(parts.username) if parts.username else "guest"
        password = unquote(parts.password) if parts.password is not None else "guest"
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        port = f":{parts.port}" if parts.port else ""
        self.base = f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}/api"
        self._session = requests.Session()
        self._session.auth = (self.user, password)
        # A proxy from the environment never knows the way to a node on this machine.
        self._session.trust_env = not _is_loopback(parts.hostname)

    @classmethod
    def for_broker(cls, broker: Any, *, timeout: float = DEFAULT_TIMEOUT) -> Management:
        """The management API of a :class:`~mpsoa_lab.running.lab.Broker` (``lab.sync``,
        ``lab.async_``)."""
        role = getattr(broker, "role", None)
        url = getattr(broker, "management_url", None)
        if not url:
            raise ManagementAPIUnavailable(
                f"No management API URL is known for the {role or 'given'} broker "
                f"({getattr(broker, 'safe_url', '?')}). {cls._advice(role)}"
            )
        return cls(url, timeout=timeout, role=role, vhost=getattr(broker, "vhost", "/") or "/")

    @property
    def safe_url(self) -> str:
        """The API URL without its password, for messages and logs."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"<Management {self.safe_url}>"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Management:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------------
    @staticmethod
    def _variables(role: str | None) -> str:
        if role in ("sync", "async"):
            return f"MPSOA_{role.upper()}_MANAGEMENT_URL"
        return "MPSOA_SYNC_MANAGEMENT_URL / MPSOA_ASYNC_MANAGEMENT_URL"

    @classmethod
    def _advice(cls, role: str | None) -> str:
        return (
            "Check that the broker runs with the management plugin "
            "(rabbitmq-plugins enable rabbitmq_management; the rabbitmq:*-management images "
            f"have it) and that host and port are right: set {cls._variables(role)} to its "
            "URL, e.g. http://user:password@host:15672/ ."
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        ok_missing: bool = False,
        **kwargs: Any,
    ) -> Any:
        url = f"{self.base}/{path}"
        call = f"{method} /api/{path}"
        started = time.monotonic()
        try:
            resp = self._session.request(
                method, url, timeout=(self.timeout, self.timeout), **kwargs
            )
        except requests.RequestException as exc:
            raise ManagementAPIUnavailable(
                f"The RabbitMQ management API at {self.safe_url} did not answer {call} "
                f"({type(exc).__name__}: {_reason(exc)}; gave up after "
                f"{time.monotonic() - started:.1f} s). {self._advice(self.role)}"
            ) from None
        status = resp.status_code
        if status == 404 and what and _is_rabbitmq_not_found(resp):
            if ok_missing:
                return _MISSING
            raise EntityNotFound(f"{what} does not exist on the broker at {self.safe_url}.")
        if status in (401, 403):
            raise ManagementAPIUnavailable(
                f"The RabbitMQ management API at {self.safe_url} refused user {self.user!r} "
                f"(HTTP {status} on {call}). Put the name and password of a user with the "
                "'administrator' tag (or 'management' for reads) in the URL: set "
                f"{self._variables(self.role)}."
            )
        if status >= 500:
            raise ManagementAPIUnavailable(
                f"The RabbitMQ management API at {self.safe_url} answered HTTP {status} to "
                f"{call}: the node may be starting, stopping or overloaded. Try again in a few "
                f"seconds. ({resp.text[:200]})"
            )
        if status == 404 or (resp.content and "json" not in resp.headers.get("content-type", "")):
            raise ManagementAPIUnavailable(
                f"Something answered at {self.safe_url}, but not as a RabbitMQ management API "
                f"(HTTP {status} on {call}). " + self._advice(self.role)
            )
        if status >= 400:
            raise LabError(
                f"The RabbitMQ management API at {self.safe_url} answered HTTP {status} to "
                f"{call}: {resp.text[:300]}"
            )
        if not resp.content:
            return None
        return resp.json()

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _vh(self, vhost: str | None) -> str:
        """The vhost a call acts on: the one given, or this API's default."""
        return self.vhost if vhost is None else vhost

    @staticmethod
    def _q(name: str) -> str:
        """A vhost or entity name as one URL path segment (``/`` is ``%2F``)."""
        return quote(name, safe="")

    # -- reads ---------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """Cluster name, RabbitMQ and Erlang versions, totals (``/api/overview``)."""
        return self._get("overview")

    def nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster: memory, alarms, file descriptors (``/api/nodes``)."""
        return self._get("nodes")

    def connections(self) -> list[dict[str, Any]]:
        """Every client connection, with its ``state`` (``running``, ``flow``, ``blocked``)."""
        return self._get("connections")

    def channels(self) -> list[dict[str, Any]]:
        """Every channel: its ``prefetch_count`` and ``global_prefetch_count`` among others."""
        return self._get("channels")

    def consumers(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """Every consumer of ``vhost``: its queue, ``prefetch_count``, ``ack_required``."""
        return self._request(
            "GET", f"consumers/{self._q(self._vh(vhost))}", what=f"vhost {self._vh(vhost)!r}"
        )

    def exchanges(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """Every exchange of ``vhost``, as the API returns it."""
        return self._request(
            "GET", f"exchanges/{self._q(self._vh(vhost))}", what=f"vhost {self._vh(vhost)!r}"
        )

    def queues(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """Every queue of ``vhost``, as the API returns it (message counts lag up to one
        statistics interval behind the queue), ``arguments`` as declared (:func:`declared`)."""
        found = self._request(
            "GET", f"queues/{self._q(self._vh(vhost))}", what=f"vhost {self._vh(vhost)!r}"
        )
        return [declared(q) for q in found]

    def queue(self, name: str, vhost: str | None = None) -> dict[str, Any]:
        """One queue, or :class:`EntityNotFound`; ``arguments`` as declared (:func:`declared`)."""
        return declared(
            self._request(
                "GET",
                f"queues/{self._q(self._vh(vhost))}/{self._q(name)}",
                what=f"queue {name!r} in vhost {self._vh(vhost)!r}",
            )
        )

    def bindings(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """Every binding of ``vhost``, including the default exchange's implicit ones."""
        return self._request(
            "GET", f"bindings/{self._q(self._vh(vhost))}", what=f"vhost {self._vh(vhost)!r}"
        )

    def vhosts(self) -> list[str]:
        """The names of the broker's virtual hosts."""
        return sorted(v["name"] for v in self._get("vhosts"))

    def topology(
        self, vhost: str | None = None, prefix: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Exchanges, queues and bindings of ``vhost`` as plain, sorted dicts.

        Left out: the default exchange, ``amq.*`` exchanges and queues, and bindings that
        touch them. With ``prefix``, only exchanges and queues whose name starts with it, and
        the bindings with at least one end among them; the other end of such a binding is
        listed too, so every binding's source and destination appear in the result.
        """
        exchanges = {
            e["name"]: {
                "name": e["name"],
                "type": e["type"],
                "durable": e["durable"],
                "auto_delete": e["auto_delete"],
                "internal": e["internal"],
            }
            for e in self.exchanges(vhost)
            if not is_builtin(e["name"])
        }
        queues = {
            q["name"]: {
                "name": q["name"],
                "type": q.get("type", "classic"),
                "durable": q["durable"],
                "auto_delete": q["auto_delete"],
                "exclusive": bool(q.get("exclusive")),
                "arguments": dict(sorted((q.get("arguments") or {}).items())),
            }
            for q in self.queues(vhost)
            if not is_builtin(q["name"])
        }
        bindings = [
            {
                "source": b["source"],
                "destination": b["destination"],
                "destination_type": b["destination_type"],
                "routing_key": b["routing_key"],
                "arguments": dict(sorted((b.get("arguments") or {}).items())),
            }
            for b in self.bindings(vhost)
            if not is_builtin(b["source"]) and not is_builtin(b["destination"])
        ]

        if prefix is not None:
            keep_x = {n for n in exchanges if n.startswith(prefix)}
            keep_q = {n for n in queues if n.startswith(prefix)}

            def kept(kind: str, name: str) -> bool:
                return name in (keep_q if kind == "queue" else keep_x)

            bindings = [
                b
                for b in bindings
                if b["source"] in keep_x or kept(b["destination_type"], b["destination"])
            ]
            for b in bindings:  # close the graph: both ends of every kept binding
                keep_x.add(b["source"])
                (keep_q if b["destination_type"] == "queue" else keep_x).add(b["destination"])
            exchanges = {n: e for n, e in exchanges.items() if n in keep_x}
            queues = {n: q for n, q in queues.items() if n in keep_q}

        return {
            "exchanges": [exchanges[n] for n in sorted(exchanges)],
            "queues": [queues[n] for n in sorted(queues)],
            "bindings": sorted(
                bindings,
                key=lambda b: (
                    b["source"],
                    b["destination_type"],
                    b["destination"],
                    b["routing_key"],
                ),
            ),
        }

    def get_messages(
        self,
        queue: str,
        count: int = 1,
        ackmode: str = "ack_requeue_true",
        vhost: str | None = None,
    ) -> list[dict[str, Any]]:
        """Fetch up to ``count`` messages from ``queue``, as the UI's "Get messages" does.

        ``ackmode="ack_requeue_true"`` (default) puts them back (marked redelivered);
        ``"ack_requeue_false"`` removes them. Payloads come back as strings (``encoding=auto``).
        """
        if ackmode not in (
            "ack_requeue_true",
            "ack_requeue_false",
            "reject_requeue_true",
            "reject_requeue_false",
        ):
            raise ValueError(f"unknown ackmode {ackmode!r}")
        body = {"count": count, "ackmode": ackmode, "encoding": "auto", "truncate": 50000}
        return self._request(
            "POST",
            f"queues/{self._q(self._vh(vhost))}/{self._q(queue)}/get",
            json=body,
            what=f"queue {queue!r} in vhost {self._vh(vhost)!r}",
        )

    def policies(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """Every policy of ``vhost``: name, pattern, definition, apply-to, priority."""
        return self._request(
            "GET", f"policies/{self._q(self._vh(vhost))}", what=f"vhost {self._vh(vhost)!r}"
        )

    def put_policy(
        self,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        vhost: str | None = None,
        *,
        apply_to: str = "queues",
        priority: int = 0,
    ) -> None:
        """Set (or replace) policy ``name`` of ``vhost``: ``definition`` (e.g. ``{"ha-mode":
        "all"}``) applies to every queue (``apply_to``) whose name matches ``pattern``."""
        self._request(
            "PUT",
            f"policies/{self._q(self._vh(vhost))}/{self._q(name)}",
            json={
                "pattern": pattern,
                "definition": definition,
                "apply-to": apply_to,
                "priority": priority,
            },
        )

    # -- deletes and vhosts --------------------------------------------------------------------
    def _delete(
        self, kind: str, collection: str, name: str, vhost: str | None, missing_ok: bool
    ) -> bool:
        """DELETE ``<collection>/<vhost>/<name>``; False if it did not exist (and ``missing_ok``)."""
        done = self._request(
            "DELETE",
            f"{collection}/{self._q(self._vh(vhost))}/{self._q(name)}",
            what=f"{kind} {name!r} in vhost {self._vh(vhost)!r}",
            ok_missing=missing_ok,
        )
        return done is not _MISSING

    def delete_policy(self, name: str, vhost: str | None = None, missing_ok: bool = True) -> bool:
        """Remove policy ``name`` of ``vhost``; False if it did not exist."""
        return self._delete("policy", "policies", name, vhost, missing_ok)

    def delete_queue(self, name: str, vhost: str | None = None, missing_ok: bool = True) -> bool:
        """Delete a queue (and its messages and bindings); False if it did not exist."""
        return self._delete("queue", "queues", name, vhost, missing_ok)

    def delete_exchange(self, name: str, vhost: str | None = None, missing_ok: bool = True) -> bool:
        """Delete an exchange (and the bindings from it); False if it did not exist."""
        if is_builtin(name):
            raise ValueError(f"exchange {name!r} belongs to RabbitMQ and cannot be deleted")
        return self._delete("exchange", "exchanges", name, vhost, missing_ok)

    # -- users and permissions -----------------------------------------------------------------
    def put_user(self, name: str, password: str, tags: str = "") -> None:
        """Create (or change) a user of the broker; users are broker-wide, not per vhost."""
        self._request("PUT", f"users/{self._q(name)}", json={"password": password, "tags": tags})

    def delete_user(self, name: str, missing_ok: bool = True) -> bool:
        """Delete a user (and its permissions everywhere); False if it did not exist."""
        if name == self.user:
            raise ValueError(f"user {name!r} is the one this API acts as")
        done = self._request(
            "DELETE", f"users/{self._q(name)}", what=f"user {name!r}", ok_missing=missing_ok
        )
        return done is not _MISSING

    def users(self) -> list[dict[str, Any]]:
        """Every user of the broker (name, tags; never a password)."""
        return [{"name": u["name"], "tags": u.get("tags")} for u in self._get("users")]

    def put_permissions(
        self, user: str, configure: str, write: str, read: str, vhost: str | None = None
    ) -> None:
        """Set ``user``'s permissions in ``vhost``: three regular expressions over the names of
        the queues and exchanges it may declare or delete, publish to (or bind to), consume
        from (or bind from). ``""`` matches nothing."""
        self._request(
            "PUT",
            f"permissions/{self._q(self._vh(vhost))}/{self._q(user)}",
            json={"configure": configure, "write": write, "read": read},
        )

    def import_definitions(self, definitions: dict[str, Any]) -> None:
        """Load RabbitMQ definitions (users, vhosts, permissions, topology) into the broker, as
        ``rabbitmqctl import_definitions`` does; what exists already is updated, nothing is
        deleted. Needs the ``administrator`` tag."""
        self._request("POST", "definitions", json=definitions)

    def create_vhost(self, name: str) -> None:
        """Create a virtual host and give this API user full permissions on it (idempotent).

        A vhost is a namespace of its own on the same broker: exchanges and queues in it never
        meet those of another vhost, however they are named. Needs the ``administrator`` tag.
        """
        self._request("PUT", f"vhosts/{self._q(name)}")
        self._request(
            "PUT",
            f"permissions/{self._q(name)}/{self._q(self.user)}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        )

    def delete_vhost(self, name: str, missing_ok: bool = True) -> bool:
        """Delete a virtual host and everything in it; False if it did not exist."""
        if name == "/":
            raise ValueError("the default vhost '/' is not the lab's to delete")
        done = self._request(
            "DELETE", f"vhosts/{self._q(name)}", what=f"vhost {name!r}", ok_missing=missing_ok
        )
        return done is not _MISSING
