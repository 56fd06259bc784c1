"""What each 2014 setting does on Celery 5 and today's RabbitMQ, found out by running it.

:func:`audit_legacy_settings` configures the 2014 apps (:mod:`mpsoa_lab.legacy.design2014`) on a
real broker and reports, for every setting of the 2014 ``CeleryConfig`` and of its app factory, one
row: the 2014 value, the Celery 5 name, a status and the observation behind it. Statuses:

``still works``       the 2014 spelling has the 2014 effect, and nothing was renamed;
``renamed``           Celery maps the old name to a new one and the value has the 2014 effect;
``changed meaning``   the name is accepted but the observed effect is not the 2014 one;
``silently ignored``  accepted without error or warning, and without any effect;
``removed``           the value no longer exists: using it raises.

Nothing is a rename table of ours: old names are looked up in Celery's own
(``celery.app.defaults._TO_NEW_KEY``), effects are read back from the app's configuration, from
messages on the broker and from queues through the management HTTP API
(:func:`mpsoa_lab.legacy.observed.observe_legacy_on_broker`, also exported here). The broker
probes run in a scratch virtual host that is deleted afterwards, with everything declared in it,
so the audit never touches the platform's own queues.

:func:`probe_mixed_names` shows what happens when one new-style name joins the old ones.
"""

from __future__ import annotations

import difflib
from importlib.metadata import requires
from typing import Any

from celery import Celery
from celery.app.backends import BACKEND_ALIASES
from celery.app.defaults import _OLD_SETTING_KEYS, _TO_NEW_KEY, SETTING_KEYS
from celery.exceptions import ImproperlyConfigured

from . import design2014 as legacy
from .observed import _PICKLE, _scheme, _sentence, observe_legacy_on_broker

__all__ = [
    "STATUSES",
    "audit_legacy_settings",
    "observe_legacy_on_broker",
    "probe_mixed_names",
]

STATUSES = ("still works", "renamed", "changed meaning", "silently ignored", "removed")


# -- probes without a broker -------------------------------------------------------------------


def _app(config: type = legacy.CeleryConfig, **overrides: Any) -> Celery:
    """An app configured from ``config`` (plus class attributes ``overrides``); never connects."""
    if overrides:
        config = type("Config", (config,), overrides)
    app = Celery("mpsoa-audit", set_as_current=False)
    app.config_from_object(config)
    return app


def _config_without(key: str) -> type:
    attrs = {k: v for k, v in vars(legacy.CeleryConfig).items() if k.isupper() and k != key}
    return type("Config", (), attrs)


def _new_style_values(app: Celery) -> dict[str, str]:
    return {key: repr(app.conf[key]) for key in SETTING_KEYS}


def _settings_changed_by(key: str, value: Any) -> list[str]:
    """Celery 5 settings whose value changes when ``key = value`` joins the 2014 config.

    For a boolean the opposite value is tried as well, so that a value equal to the default
    (``CELERY_ENABLE_UTC = True``) cannot hide that the key is ignored.
    """
    base = _config_without(key)
    before = _new_style_values(_app(base))
    changed: set[str] = set()
    for tried in [value] + ([not value] if isinstance(value, bool) else []):
        after = _new_style_values(_app(base, **{key: tried}))
        changed |= {k for k in before if before[k] != after[k]}
    return sorted(changed)


def _known_names_like(key: str) -> list[str]:
    """Old names Celery does know that look like ``key`` (a suffix of it, or close spelling)."""
    suffixes = sorted(k for k in _OLD_SETTING_KEYS if k != key and key.endswith("_" + k))
    return suffixes or difflib.get_close_matches(key, sorted(_OLD_SETTING_KEYS), n=2, cutoff=0.8)


def _display(value: Any) -> Any:
    """The 2014 value as the table shows it: objects by the code that made them."""
    if value is legacy.CeleryConfig.CELERY_ROUTES:
        return "(Router(),)"
    if value is legacy.CeleryConfig.CELERY_QUEUES:
        return f"_get_celery_queues()  # {len(value)} queues"
    return value


def _row(setting: str, value: Any, new: str | None, status: str, evidence: str) -> dict[str, Any]:
    assert status in STATUSES, status
    return {
        "setting": setting,
        "value_2014": _display(value),
        "celery5_name": new,
        "status": status,
        "evidence": evidence,
    }


def _config_row(app: Celery, key: str, effect: tuple[bool, str] | None = None) -> dict[str, Any]:
    """Classify a ``CeleryConfig`` key from Celery's old-name table and what the app reads.

    ``effect`` is ``(as_in_2014, sentence)`` from a probe of the setting's effect, if any.
    """
    value = getattr(legacy.CeleryConfig, key)
    new = _TO_NEW_KEY.get(key)
    tail = f"; {effect[1]}" if effect else ""
    if new is not None:
        got = app.conf[new]
        flagged = key in (app.conf.deprecated_settings or ())
        as_2014 = (got is value or got == value) and (effect is None or effect[0])
        shown = repr(got) if _display(value) is value else "the 2014 value"
        evidence = (
            f"Celery maps it: app.conf.{new} is {shown}"
            f"{' (flagged deprecated, removal in 6.0)' if flagged else ''}{tail}."
        )
        return _row(key, value, new, "renamed" if as_2014 else "changed meaning", evidence)
    changed = _settings_changed_by(key, value)
    alike = _known_names_like(key)
    known = f" (it knows {', '.join(alike)})" if alike else ""
    tried = " (True or False)" if isinstance(value, bool) else ""
    changes = (
        f"it changes {', '.join(changed)}"
        if changed
        else f"it changes none of the {len(SETTING_KEYS)} Celery 5 settings"
    )
    evidence = f"Not in Celery's old-name table{known}; {changes}{tried}{tail}."
    has_effect = bool(changed) or (effect is not None and effect[0])
    return _row(key, value, None, "still works" if has_effect else "silently ignored", evidence)


def _amqp_backend() -> tuple[str | None, str]:
    """Load the ``amqp`` result backend the 2014 config meant; return (error class, sentence)."""
    app = _app(CELERY_RESULT_BACKEND="amqp")
    alias = "amqp" in BACKEND_ALIASES
    try:
        backend = app.backend
    except (ImproperlyConfigured, ImportError) as exc:
        return type(exc).__name__, (
            f"'amqp' is {'one' if alias else 'not one'} of Celery's backend aliases and loading "
            f"it raised {type(exc).__name__}: {_sentence(exc)}"
        )
    return None, f"it loads as {type(backend).__name__}"


# -- the audit ----------------------------------------------------------------------------------


def audit_legacy_settings(
    sync_url: str,
    async_url: str | None = None,
    management_url: str | None = None,
    *,
    async_management_url: str | None = None,
) -> list[dict[str, Any]]:
    """One row per 2014 setting: ``setting, value_2014, celery5_name, status, evidence``.

    The URLs are those of :func:`observe_legacy_on_broker`, which runs the broker probes; the
    rest are probes of the apps' configuration. Takes well under a second on a local broker.
    """
    obs = observe_legacy_on_broker(
        sync_url, async_url, management_url, async_management_url=async_management_url
    )
    app = _app()
    sync_msg, async_msg = obs["sync_message"], obs["async_message"]
    rows = []

    routed = (sync_msg["exchange"], sync_msg["routing_key"]) == ("mplogin", "mplogin.sync.register")
    rows.append(
        _config_row(
            app,
            "CELERY_ROUTES",
            (
                routed,
                (
                    "route_for_task is still called: 'mplogin.sync.register' reached mplogin.sync through "
                    f"exchange {sync_msg['exchange']!r} with routing key {sync_msg['routing_key']!r}"
                ),
            ),
        )
    )
    rows.append(_config_row(app, "CELERY_ACCEPT_CONTENT"))
    rows.append(
        _config_row(
            app,
            "CELERY_TASK_SERIALIZER",
            (
                sync_msg["content_type"] == _PICKLE,
                f"the sync message's content type was {sync_msg['content_type']!r}",
            ),
        )
    )
    rows.append(
        _config_row(
            app,
            "CELERY_RESULT_SERIALIZER",
            (True, f"never used here: app.conf.result_backend is {app.conf.result_backend!r}"),
        )
    )
    rows.append(
        _config_row(
            app, "CELERY_TIMEZONE", (str(app.timezone) == "UTC", f"app.timezone is {app.timezone}")
        )
    )
    rows.append(_config_row(app, "CELERY_ENABLE_UTC"))

    # CELERY_BACKEND: the key itself, then the backend it named.
    got_kind, got_text = obs["get"]
    outcome = f"returned {got_text}" if got_kind == "returned" else f"raised {got_kind}: {got_text}"
    rows.append(
        _config_row(
            app,
            "CELERY_BACKEND",
            (
                got_kind == "returned",
                (
                    f"result_backend stays {app.conf.result_backend!r} and the sync call's .get() {outcome}"
                ),
            ),
        )
    )
    error, sentence = _amqp_backend()
    rows.append(
        _row(
            "CELERY_RESULT_BACKEND",
            "amqp",
            "result_backend",
            "removed" if error else "still works",
            f"What CELERY_BACKEND = 'amqp' asked for: {sentence}.",
        )
    )

    # CELERY_QUEUE_HA_POLICY: the declared queues' arguments, and the control queue's.
    with_ha = sorted(
        name
        for name, info in obs["queues"].items()
        if "x-ha-policy" in ((info or {}).get("arguments") or {})
    )
    control = obs["ha_control"] or {}
    rows.append(
        _config_row(
            app,
            "CELERY_QUEUE_HA_POLICY",
            (
                bool(with_ha),
                (
                    f"x-ha-policy is on {len(with_ha)} of the {len(obs['queues'])} declared queues "
                    f"(arguments: {_distinct_arguments(obs['queues'])}), while a control queue declared "
                    f"by hand with it shows arguments {control.get('arguments')}"
                ),
            ),
        )
    )

    rows.append(
        _config_row(
            app, "CELERY_DISABLE_RATE_LIMITS", (True, "a worker setting, not exercised here")
        )
    )

    # CELERY_QUEUES: what was declared from the dict, read back from the broker.
    queues = legacy._get_celery_queues()
    expected = {(spec["exchange"], name, spec["binding_key"]) for name, spec in queues.items()}
    durable = {name for name, info in obs["queues"].items() if info and info.get("durable")}
    topics = {
        spec["exchange"]
        for spec in queues.values()
        if obs["exchanges"].get(spec["exchange"]) == "topic"
    }
    rows.append(
        _config_row(
            app,
            "CELERY_QUEUES",
            (
                expected <= obs["bindings"]
                and durable == set(queues)
                and topics == set(legacy.LEGACY_SERVICES),
                f"the dict shape is still accepted: {len(durable)} durable queues declared, "
                f"{len(expected & obs['bindings'])} of {len(expected)} bindings with the 2014 binding "
                f"keys, on {len(topics)} topic exchanges",
            ),
        )
    )

    # The queue dict's delivery_mode, read on the messages that went through those queues.
    rows.append(
        _row(
            "CELERY_QUEUES['<service>.sync']['delivery_mode']",
            1,
            "task_queues['<service>.sync']['delivery_mode']",
            "still works" if sync_msg["delivery_mode"] == 1 else "silently ignored",
            f"The sync message was published with delivery_mode {sync_msg['delivery_mode']}, the "
            f"async one (no delivery_mode in its queue dict) with {async_msg['delivery_mode']}.",
        )
    )

    rows.append(
        _config_row(
            app,
            "BROKER_HEARTBEAT",
            (
                obs["heartbeat_worker"] == app.conf.broker_heartbeat,
                f"a connection opened as a worker opens it negotiated {obs['heartbeat_worker']:g} s, a "
                f"publisher's connection {obs['heartbeat_publisher']:g} s"
                f"{' (no heartbeats)' if not obs['heartbeat_publisher'] else ''}",
            ),
        )
    )
    rows.append(
        _config_row(
            app, "BROKER_HEARTBEAT_CHECKRATE", (True, "a worker setting, not exercised here")
        )
    )
    pool = obs["pool"]
    rows.append(
        _config_row(
            app,
            "BROKER_POOL_LIMIT",
            (
                pool["limit"] == 0 and not pool["reused"] and pool["closed_on_release"],
                f"app.pool.limit is {pool['limit']}; two acquisitions gave "
                f"{'the same' if pool['reused'] else 'two different'} connections and the released one "
                f"was {'closed' if pool['closed_on_release'] else 'kept open'}",
            ),
        )
    )

    conf_value, task_value = obs["ignore_result"]
    rows.append(
        _row(
            "CELERY_IGNORE_RESULT",
            True,
            _TO_NEW_KEY.get("CELERY_IGNORE_RESULT"),
            "renamed" if conf_value is True and task_value is True else "changed meaning",
            f"Set on the async app's conf after config_from_object: app.conf.task_ignore_result is "
            f"{conf_value!r} and a task declared on that app has ignore_result {task_value!r}.",
        )
    )

    rows.append(
        _row(
            "BROKER_URL (SUBSCRIBER: pyamqp://)",
            "pyamqp://<sync_broker_url>",
            "broker_url",
            "still works",
            f"The SUBSCRIBER apps (app.conf.broker_url starts {_scheme(obs['subscriber_url'])}) "
            "connected, declared queues and published; their messages arrived.",
        )
    )
    rows.append(_publisher_row(obs))
    return rows


def _distinct_arguments(queues: dict[str, dict[str, Any] | None]) -> str:
    return ", ".join(sorted({repr((info or {}).get("arguments")) for info in queues.values()}))


def _publisher_row(obs: dict[str, Any]) -> dict[str, Any]:
    setting, value = "BROKER_URL (PUBLISHER: librabbitmq://)", "librabbitmq://<sync_broker_url>"
    if obs["publisher"] is None:
        return _row(
            setting,
            value,
            "broker_url",
            "still works",
            "The PUBLISHER app published with librabbitmq://.",
        )
    kind, text = obs["publisher"]
    marker = next(
        (
            r.split(";", 1)[1].strip()
            for r in requires("celery") or ()
            if "librabbitmq" in r and ";" in r
        ),
        None,
    )
    return _row(
        setting,
        value,
        "broker_url",
        "removed" if kind in ("ModuleNotFoundError", "ImportError") else "changed meaning",
        f"The PUBLISHER app (app.conf.broker_url starts {_scheme(obs['publisher_url'])}): "
        f"send_task raised {kind}: {text}"
        f"{'; Celery requires librabbitmq only when ' + marker if marker else ''}.",
    )


# -- mixing old and new names --------------------------------------------------------------------


def probe_mixed_names(new_name: str = "result_backend", value: Any = "rpc://") -> dict[str, Any]:
    """Add one new-style setting to the 2014 config and report what Celery does.

    The natural fix for the removed ``amqp`` backend is ``result_backend = 'rpc://'``; added
    to a config of old names, it makes Celery refuse the whole configuration.
    """
    app = Celery("mpsoa-audit-mixed", set_as_current=False)
    app.config_from_object(type("Config", (legacy.CeleryConfig,), {new_name: value}))
    report: dict[str, Any] = {"added": {new_name: value}, "config_from_object": "returned"}
    try:
        report["read"] = {"task_serializer": app.conf.task_serializer}
        report.update(raised=None, message=None)
    except Exception as exc:  # noqa: BLE001 - the error is the observation
        report.update(
            raised=type(exc).__name__,
            message=_sentence(exc),
            raised_on="the first read of app.conf",
        )
    return report
