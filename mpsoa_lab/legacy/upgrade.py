"""Celery's own tool for old settings, ``celery upgrade settings``, run on the 2014 configuration.

:func:`run_celery_upgrade_settings` writes the 2014 settings (from
:mod:`mpsoa_lab.legacy.design2014`) to a temporary module, runs ``celery upgrade settings`` on
it, loads the result, and reports what it renamed and where it falls short: names it does not
know, a name it mangles, and values it cannot fix (a removed result backend, pickle, the
librabbitmq transport).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from celery.app.defaults import _OLD_SETTING_KEYS, _TO_NEW_KEY, SETTING_KEYS

from . import design2014 as legacy
from .audit import _amqp_backend, _app
from .observed import _sentence

__all__ = ["run_celery_upgrade_settings", "legacy_settings_source"]


def legacy_settings_source() -> str:
    """The 2014 settings as one self-contained module, built from
    :mod:`mpsoa_lab.legacy.design2014`."""
    header = (
        '"""The 2014 Celery settings (from mpsoa_lab.legacy.design2014), for `celery upgrade settings`."""\n'
        "from __future__ import annotations\n\nimport re\nfrom typing import Any\n\n"
        "from celery import Celery\n\n"
        f"LEGACY_SERVICES = {legacy.LEGACY_SERVICES!r}\n"
        f"LEGACY_SYNC_PATTERN = {legacy.LEGACY_SYNC_PATTERN!r}\n"
        f"LEGACY_ASYNC_PATTERN = {legacy.LEGACY_ASYNC_PATTERN!r}\n\n\n"
    )
    parts = [
        inspect.getsource(obj)
        for obj in (
            legacy.Router,
            legacy._get_celery_queues,
            legacy.CeleryConfig,
            legacy.legacy_celery_apps_factory,
        )
    ]
    return header + "\n\n".join(parts)


_ASSIGN = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*)\s*=")


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"mpsoa_upgraded_{secrets.token_hex(3)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replaced_key(old: str, new: str) -> str:
    """The old name inside ``old`` that ``celery upgrade`` replaced to make ``new``."""
    return next(
        k for k in sorted(_TO_NEW_KEY, key=len, reverse=True) if k in old and _TO_NEW_KEY[k] in new
    )


def run_celery_upgrade_settings() -> dict[str, Any]:
    """Run ``celery upgrade settings`` on a copy of the 2014 settings; report what it did.

    Keys: ``command``, ``returncode``, ``output``, ``backup_written``, ``renamed`` (old -> new
    for setting names it turned into Celery 5 names), ``renamed_where`` (class body, module
    level or an attribute of an object such as ``app.conf``), ``mangled`` (old -> a name Celery
    knows in neither form), ``left_unchanged`` (2014 names it did not touch),
    ``other_lines_changed``, ``after_upgrade`` (what an app configured from the upgraded class
    reads) and ``shortfalls`` (sentences). The file lives in a temporary directory that is
    removed afterwards.
    """
    names_2014 = [k for k in vars(legacy.CeleryConfig) if k.isupper()] + ["CELERY_IGNORE_RESULT"]
    with tempfile.TemporaryDirectory(prefix="mpsoa-upgrade-") as tmp:
        path = Path(tmp) / "celeryconfig_2014.py"
        before = legacy_settings_source()
        path.write_text(before)
        proc = subprocess.run(
            [sys.executable, "-m", "celery", "upgrade", "settings", path.name],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=60,
        )
        after = path.read_text()
        backup = path.with_name(path.name + ".orig").exists()
        module = _load(path)

    renamed, mangled, where, other = {}, {}, {}, []
    for old_line, new_line in zip(before.splitlines(), after.splitlines()):
        if old_line == new_line:
            continue
        old_m, new_m = _ASSIGN.match(old_line), _ASSIGN.match(new_line)
        if old_m and new_m and old_m.group(1) in names_2014:
            target = renamed if new_m.group(1) in SETTING_KEYS else mangled
            target[old_m.group(1)] = new_m.group(1)
            target_text = old_line.split("=")[0]
            where[old_m.group(1)] = (
                "attribute of an object"
                if "." in target_text
                else "class body"
                if old_line[:1].isspace()
                else "module level"
            )
        else:
            other.append({"before": old_line.strip(), "after": new_line.strip()})
    left = [n for n in names_2014 if n not in renamed and n not in mangled]

    config = module.CeleryConfig
    after_upgrade: dict[str, Any] = {}
    try:
        app = _app(config)
        after_upgrade.update(
            error=None,
            deprecated_settings=sorted(app.conf.deprecated_settings or ()),
            unknown_keys=sorted(
                k
                for k in vars(config)
                if not k.startswith("__") and k not in SETTING_KEYS and k not in _OLD_SETTING_KEYS
            ),
            result_backend=app.conf.result_backend,
            task_serializer=app.conf.task_serializer,
            accept_content=app.conf.accept_content,
        )
        # Does a mangled name still reach the setting its replaced part named? Flip it and see.
        for old, new in mangled.items():
            target = _TO_NEW_KEY[_replaced_key(old, new)]
            value = getattr(config, new)
            if isinstance(value, bool):
                after_upgrade.setdefault("mangled_effect", {})[new] = {
                    "set_to": not value,
                    "setting": target,
                    "reads": _app(config, **{new: not value}).conf[target],
                }
    except Exception as exc:  # noqa: BLE001 - an upgraded file that does not load is a finding
        after_upgrade.update(error=f"{type(exc).__name__}: {_sentence(exc)}")
    after_upgrade["factory_still_uses_librabbitmq"] = bool(
        re.search(r"[\"']librabbitmq[\"']", after)
    )

    shortfalls = []
    unknown = [n for n in left if n not in _OLD_SETTING_KEYS and n not in SETTING_KEYS]
    if unknown:
        shortfalls.append(
            f"Left {', '.join(unknown)} as they were: Celery knows none of these "
            "names, old or new, so they stay silently ignored."
        )
    for old, new in mangled.items():
        effect = after_upgrade.get("mangled_effect", {}).get(new)
        shortfalls.append(
            f"Turned {old} into {new}, a name Celery does not know: it replaced the substring "
            f"{_replaced_key(old, new)}, an old name Celery does know"
            + (
                f" ({new} = {effect['set_to']} leaves {effect['setting']} at {effect['reads']})"
                if effect
                else ""
            )
            + "."
        )
    backend_error, _ = _amqp_backend()
    if after_upgrade.get("result_backend") is None and "CELERY_BACKEND" in left:
        shortfalls.append(
            "Did not carry CELERY_BACKEND = 'amqp' over to result_backend, so results stay "
            "disabled"
            + (
                f"; nor could it: result_backend = 'amqp' raises {backend_error}"
                if backend_error
                else ""
            )
            + "."
        )
    if after_upgrade.get("task_serializer") == "pickle":
        shortfalls.append(
            "Kept pickle as task serializer and in accept_content: it renames names, never values."
        )
    if after_upgrade["factory_still_uses_librabbitmq"]:
        shortfalls.append("Left the factory's librabbitmq:// transport for PUBLISHER apps.")
    if other:
        shortfalls.append(
            f"Also rewrote {len(other)} line(s) that assign no setting (it replaces "
            "text line by line, docstrings and comments included)."
        )
    return {
        "command": "celery upgrade settings celeryconfig_2014.py",
        "returncode": proc.returncode,
        "output": (proc.stdout + proc.stderr).replace(tmp, "<tmp>").strip(),
        "backup_written": backup,
        "renamed": renamed,
        "renamed_where": where,
        "mangled": mangled,
        "left_unchanged": left,
        "other_lines_changed": other,
        "after_upgrade": after_upgrade,
        "shortfalls": shortfalls,
    }
