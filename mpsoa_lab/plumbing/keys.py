"""Keys and X.509 certificates the lab makes for itself, in a folder it removes again.

:func:`make_identity` writes an RSA key (PEM, PKCS#8, no password, mode 0600) and a
self-signed certificate for it, valid from five minutes ago for ``days`` (a negative ``days``
makes one that has already expired). :func:`key_folder` is a context manager that gives a fresh
folder, readable by this user only, and deletes it and everything in it on the way out: keys
never outlive the experiment that made them (and the lab's home, where the folder lives, goes
with the lab anyway).

Nothing here prints or returns a key's bytes: :class:`Identity` holds paths, and its ``repr``
names the files only.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Identity", "make_identity", "make_ca", "key_folder"]


@dataclass(frozen=True)
class Identity:
    """A key and its certificate, as files."""

    name: str
    key: Path
    cert: Path


def make_identity(
    folder: Path,
    name: str,
    *,
    days: float = 1.0,
    bits: int = 2048,
    issuer: Identity | None = None,
    hosts: tuple[str, ...] = (),
    ca: bool = False,
) -> Identity:
    """An RSA key and a certificate (common name ``mpsoa-lab <name>``) in ``folder``:
    self-signed, or signed by ``issuer``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"an identity's name is a plain file name, not {name!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mpsoa-lab {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(minutes=5)
    end = now + datetime.timedelta(days=days)
    if end <= start:  # an expired certificate: valid for one minute, long ago
        start = end - datetime.timedelta(minutes=1)
    signer, issuer_name = key, subject
    if issuer is not None:
        signer = serialization.load_pem_private_key(issuer.key.read_bytes(), password=None)
        issuer_name = x509.load_pem_x509_certificate(issuer.cert.read_bytes()).subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if issuer is not None and not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    identity = Identity(name, Path(folder) / f"{name}.key", Path(folder) / f"{name}.pem")
    fd = os.open(identity.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return identity


def make_ca(folder: Path, name: str = "ca", *, days: float = 1.0) -> Identity:
    """A certificate authority of the lab's own: a self-signed certificate that may sign others."""
    return make_identity(folder, name, days=days, ca=True)


@contextlib.contextmanager
def key_folder(parent: Path, prefix: str = "keys") -> Iterator[Path]:
    """A fresh folder ``<parent>/<prefix>-<random>`` (mode 0700), deleted with its contents on exit."""
    folder = Path(parent) / f"{prefix}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o700, parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
