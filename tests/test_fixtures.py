"""The three real services the suite relies on actually start and answer."""

from __future__ import annotations

import subprocess
import uuid

import aetcd
from minio import Minio

from tests.support.services import EtcdServer, S3Server


async def test_etcd_put_get(etcd_server: EtcdServer) -> None:
    key = f"/fixture-test/{uuid.uuid4()}".encode()
    async with aetcd.Client(host="127.0.0.1", port=etcd_server.client_port, timeout=5) as client:
        await client.put(key, b"hello")
        got = await client.get(key)
    assert got is not None and got.value == b"hello"


def test_s3_bucket_roundtrip(s3_server: S3Server) -> None:
    import io

    client = Minio(
        f"127.0.0.1:{s3_server.port}",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
        region=s3_server.region,
    )
    bucket = f"fixture-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    client.put_object(bucket, "a/b.txt", io.BytesIO(b"payload"), length=7)
    resp = client.get_object(bucket, "a/b.txt")
    try:
        assert resp.read() == b"payload"
    finally:
        resp.close()
        resp.release_conn()


def test_container_runs_in_busybox_image(busybox_image: str) -> None:
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", busybox_image, "/bin/sh", "-c", "echo hi from $(uname -s)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hi from Linux"
