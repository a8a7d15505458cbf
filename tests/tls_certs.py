"""Throwaway TLS material for tests, made with the `openssl` command line tool.

A CA, a server certificate it signed for 127.0.0.1 and localhost, a client certificate it signed
(mutual TLS), and an unrelated CA that trusts none of them. RSA 2048, valid two days.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    """Run openssl, failing with its own message."""
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def _signed(name: str, subject: str, extensions: str, directory: Path) -> None:
    """`name`.pem / `name`.key, signed by ca.pem."""
    (directory / f"{name}.cnf").write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", subject, cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.cnf",
             cwd=directory)  # fmt: skip


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the files in `directory` (about a second)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests need the openssl command (apt-get install openssl)")
    for ca, subject in (("ca", "/CN=tokenbudget test CA"), ("other-ca", "/CN=unrelated CA")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", subject, cwd=directory)  # fmt: skip
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
    _signed(
        "server",
        "/CN=localhost",
        leaf + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        directory,
    )
    _signed("client", "/CN=tokenbudget-worker", leaf + "extendedKeyUsage=clientAuth\n", directory)
    return TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
