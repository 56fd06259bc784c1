"""The lab's keys and the reading of a signed body (no broker): mpsoa_lab.plumbing.keys and
mpsoa_lab.experiments.signed_messages."""

from __future__ import annotations

import json
import stat

import pytest

from mpsoa_lab.experiments import signed_messages
from mpsoa_lab.plumbing.keys import key_folder, make_identity


def test_a_key_folder_is_private_and_goes_away(tmp_path):
    with key_folder(tmp_path, "signing") as folder:
        identity = make_identity(folder, "caller")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(identity.key.stat().st_mode) == 0o600
        assert identity.cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert "BEGIN" not in repr(identity)  # paths only
    assert not folder.exists()


def test_a_key_folder_goes_away_on_an_error(tmp_path):
    with pytest.raises(RuntimeError), key_folder(tmp_path) as folder:
        make_identity(folder, "worker")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b"])
def test_an_identity_name_is_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        make_identity(tmp_path, name)


def test_an_expired_certificate_is_one_celery_refuses(tmp_path):
    from celery.exceptions import SecurityError
    from celery.security.certificate import Certificate, FSCertStore

    old = make_identity(tmp_path, "old", days=-1)
    assert Certificate(old.cert.read_text()).has_expired()
    with pytest.raises(SecurityError, match="Expired certificate"):
        FSCertStore(str(old.cert))


def _serializer(identity, store):
    from celery.security.certificate import Certificate, FSCertStore
    from celery.security.key import PrivateKey
    from celery.security.serialization import SecureSerializer

    key = PrivateKey(identity.key.read_text())
    return SecureSerializer(
        key, Certificate(identity.cert.read_text()), FSCertStore(store), "sha256"
    )


def test_a_signed_body_reads_without_a_key_and_repacks_as_celery_packs_it(tmp_path):
    from celery.exceptions import SecurityError

    caller = make_identity(tmp_path, "caller")
    serializer = _serializer(caller, str(caller.cert))
    body = [[], {"user_id": 7, "amount_cents": 100}, {"callbacks": None}]
    signed = serializer.serialize(body)
    parts = signed_messages.read_signed(signed)
    assert json.loads(parts.body) == body  # signed, not encrypted
    assert parts.content_type == "application/json" and len(parts.signature) == 256
    assert parts.with_body(parts.body).decode() == signed  # the same bytes back
    assert serializer.deserialize(parts.with_body(parts.body)) == body
    changed = parts.body.replace(b"100", b"900")
    with pytest.raises(SecurityError):  # Celery 5.7 says TypeError inside; refused all the same
        serializer.deserialize(parts.with_body(changed))


def test_worker_settings_sign_results_unless_asked_not_to(tmp_path):
    keys = signed_messages.Keys(*(make_identity(tmp_path, n) for n in ("c", "w", "s")), tmp_path)
    settings = signed_messages.worker_settings(keys)
    assert settings["task_serializer"] == settings["result_serializer"] == "auth"
    assert settings["accept_content"] == ["auth"]
    assert settings["security_cert_store"].endswith("*.pem")
    assert "result_serializer" not in signed_messages.worker_settings(keys, signed_results=False)
