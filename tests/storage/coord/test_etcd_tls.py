"""etcd over TLS: a CA-verified client certificate setup, and ``tlsSkipVerify``."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agola.errors import Unavailable
from agola.storage.coord.etcd import EtcdCoordination
from tests.support.services import free_port, missing
from tests.support.waiting import wait_for_sync


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=agola-test-ca", cwd=d)
    for name, cn in (("server", "localhost"), ("client", "agola-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
        )
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    if not Path(etcd).exists() or not shutil.which("openssl"):
        missing("etcd and openssl for the TLS tests")
    d = tmp_path_factory.mktemp("etcd-tls")
    _make_certs(d)
    client = f"https://127.0.0.1:{free_port()}"
    peer = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [etcd, "--name", "tls", "--data-dir", str(d / "data"), "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"tls={peer}", "--cert-file", str(d / "server.pem"), "--key-file", str(d / "server.key"),
         "--trusted-ca-file", str(d / "ca.pem"), "--client-cert-auth", "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.load_cert_chain(str(d / "client.pem"), str(d / "client.key"))

    def ready() -> bool:
        assert proc.poll() is None, "etcd exited"
        with urllib.request.urlopen(f"{client}/health", timeout=1, context=ctx) as resp:
            return resp.status == 200

    try:
        wait_for_sync(ready, timeout=20, message="etcd with TLS ready")
        yield client, d
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_tls_with_ca_and_client_certificate(tls_etcd: tuple[str, Path]) -> None:
    endpoint, d = tls_etcd
    coord = EtcdCoordination(
        [endpoint], f"tls-{uuid.uuid4().hex[:6]}/", tls_ca_file=str(d / "ca.pem"),
        tls_cert_file=str(d / "client.pem"), tls_key_file=str(d / "client.key"), timeout=3,
    )
    try:
        rev = await coord.put("k", b"v")
        kv = await coord.get("k")
        assert kv is not None and kv.mod_revision == rev
    finally:
        await coord.close()


async def test_tls_skip_verify_trusts_the_presented_certificate(tls_etcd: tuple[str, Path]) -> None:
    endpoint, d = tls_etcd
    coord = EtcdCoordination(
        [endpoint], f"tls-{uuid.uuid4().hex[:6]}/", tls_skip_verify=True,
        tls_cert_file=str(d / "client.pem"), tls_key_file=str(d / "client.key"), timeout=3,
    )
    try:
        await coord.put("k", b"v")
        assert await coord.get("k") is not None
    finally:
        await coord.close()


async def test_plaintext_client_against_tls_server_is_unavailable(tls_etcd: tuple[str, Path]) -> None:
    endpoint, _ = tls_etcd
    coord = EtcdCoordination([endpoint.replace("https://", "http://")], "plain/", timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await coord.get("k")
    finally:
        await coord.close()
    assert time.monotonic() - started < 10
