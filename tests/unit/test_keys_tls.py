"""Certificates the lab makes for TLS (mpsoa_lab.plumbing.keys): signed by its own authority,
and accepted or refused in a real TLS handshake over loopback (Python's ssl, no broker)."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from cryptography import x509

from mpsoa_lab.plumbing.keys import make_ca, make_identity


def _cert(identity):
    return x509.load_pem_x509_certificate(identity.cert.read_bytes())


def test_an_issued_certificate_names_its_authority_and_its_hosts(tmp_path):
    ca = make_ca(tmp_path)
    server = make_identity(tmp_path, "server", issuer=ca, hosts=("127.0.0.1", "localhost"))
    _cert(server).verify_directly_issued_by(_cert(ca))
    names = _cert(server).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert _cert(ca).extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def _handshake(tmp_path, ca, server, client) -> str:
    """A TLS server on 127.0.0.1 that requires a client certificate from ``ca``; what the
    client's handshake ends with."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert))
    server_ctx.load_cert_chain(str(server.cert), str(server.key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(1))  # echo one byte: only a client it accepted hears it
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        client_ctx.load_cert_chain(str(client.cert), str(client.key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"x")
                # TLS 1.3: the server's verdict on the client's certificate comes after
                return "ok" if tls.recv(1) == b"x" else "refused"
    except (ssl.SSLError, OSError):
        return "refused"
    finally:
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("client_kind, ends", [("right", "ok"), ("none", "refused"),
                                                ("other ca", "refused"), ("expired", "refused")])  # fmt: skip
def test_the_server_accepts_only_a_valid_client_certificate_from_its_authority(
    tmp_path, client_kind, ends
):
    ca, other = make_ca(tmp_path, "ca"), make_ca(tmp_path, "other-ca")
    server = make_identity(tmp_path, "server", issuer=ca, hosts=("127.0.0.1",))
    client = {
        "right": lambda: make_identity(tmp_path, "client", issuer=ca),
        "none": lambda: None,
        "other ca": lambda: make_identity(tmp_path, "client", issuer=other),
        "expired": lambda: make_identity(tmp_path, "client", issuer=ca, days=-1),
    }[client_kind]()
    assert _handshake(tmp_path, ca, server, client) == ends
