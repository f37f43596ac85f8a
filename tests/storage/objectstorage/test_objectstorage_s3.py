"""What only the S3 backend promises: endpoint forms, bucket creation, error mapping, aborts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from minio import Minio
from minio.datatypes import Object

from agola.errors import BadRequest, NotExist, Unavailable
from agola.storage.objectstorage.s3 import S3ObjectStorage, _lexical, parse_endpoint
from tests.support.services import S3Server, free_port
from tests.support.waiting import wait_for


def _bucket() -> str:
    return f"s3-specific-{uuid.uuid4().hex[:16]}"


def _raw_client(server: S3Server) -> Minio:
    return Minio(
        f"127.0.0.1:{server.port}",
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region=server.region,
    )


def _storage(server: S3Server, bucket: str, **kw: Any) -> S3ObjectStorage:
    kw.setdefault("endpoint", server.endpoint)
    return S3ObjectStorage(
        bucket=bucket, access_key=server.access_key, secret_key=server.secret_key, location=server.region, **kw
    )


# -- endpoint forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "disable_tls", "expected"),
    [
        ("http://s3.local:9000", False, ("s3.local:9000", False)),
        ("https://s3.local", True, ("s3.local", True)),  # the scheme wins over disableTLS
        ("https://s3.local:9000/", False, ("s3.local:9000", True)),
        ("s3.local:9000", False, ("s3.local:9000", True)),
        ("s3.local:9000", True, ("s3.local:9000", False)),
    ],
)
def test_parse_endpoint(endpoint: str, disable_tls: bool, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(endpoint, disable_tls) == expected


@pytest.mark.parametrize("endpoint", ["", "ftp://s3.local", "http://s3.local/some/path", "http://"])
def test_bad_endpoints_are_rejected(endpoint: str) -> None:
    with pytest.raises(BadRequest):
        parse_endpoint(endpoint, False)


async def test_host_port_with_disable_tls_works(s3_server: S3Server) -> None:
    ost = _storage(s3_server, _bucket(), endpoint=f"127.0.0.1:{s3_server.port}", disable_tls=True)
    await ost.write("a", b"plain http")
    assert await ost.read_all("a") == b"plain http"
    await ost.close()


# -- bucket -----------------------------------------------------------------------------------


async def test_missing_bucket_is_created_on_first_use(s3_server: S3Server) -> None:
    bucket = _bucket()
    raw = _raw_client(s3_server)
    assert not raw.bucket_exists(bucket)

    ost = _storage(s3_server, bucket)
    assert [i async for i in ost.list("")] == []
    assert raw.bucket_exists(bucket)
    await ost.close()


async def test_open_creates_bucket_and_tolerates_existing_one(s3_server: S3Server) -> None:
    bucket = _bucket()
    first = await _storage(s3_server, bucket).open()
    second = await _storage(s3_server, bucket).open()  # already there: fine
    await first.write("x", b"1")
    assert await second.read_all("x") == b"1"
    assert _raw_client(s3_server).bucket_exists(bucket)
    await first.close()
    await second.close()


async def test_concurrent_first_uses_create_the_bucket_once(s3_server: S3Server) -> None:
    ost = _storage(s3_server, _bucket())
    await asyncio.gather(*(ost.write(f"o{i}", b"x") for i in range(8)))
    assert len([i async for i in ost.list("")]) == 8
    await ost.close()


# -- unreachable server -----------------------------------------------------------------------


async def test_unreachable_server_is_unavailable_and_fast() -> None:
    ost = S3ObjectStorage(f"http://127.0.0.1:{free_port()}", "nobody-home", "k", "s")

    async def stream() -> AsyncIterator[bytes]:
        yield b"data"

    started = time.monotonic()
    with pytest.raises(Unavailable):
        await ost.stat("a")
    with pytest.raises(Unavailable):
        await ost.read("a")
    with pytest.raises(Unavailable):
        await ost.write("a", b"x")
    with pytest.raises(Unavailable):
        await ost.write("a", stream())
    with pytest.raises(Unavailable):
        await ost.delete("a")
    with pytest.raises(Unavailable):
        [i async for i in ost.list("")]
    # Bounded retries: a caller's own backoff loop learns quickly, nothing hangs.
    assert time.monotonic() - started < 60
    await ost.close()


async def test_errors_do_not_leak_credentials(s3_server: S3Server) -> None:
    ost = S3ObjectStorage(f"http://127.0.0.1:{free_port()}", "b-x-y", "AKIDSECRETKEYID", "VERYSECRETVALUE")
    with pytest.raises(Unavailable) as info:
        await ost.stat("a")
    assert "VERYSECRETVALUE" not in str(info.value)
    assert "AKIDSECRETKEYID" not in str(info.value)
    await ost.close()


# -- multipart streaming ----------------------------------------------------------------------


async def test_multipart_stream_round_trip(s3_server: S3Server) -> None:
    ost = _storage(s3_server, _bucket())
    # Odd chunk sizes that do not divide the part size, crossing several parts.
    chunks = [bytes([i % 251]) * (700_001 + i) for i in range(25)]  # ~17.5 MB, 4 parts
    await ost.write("multi", _aiter(chunks))
    assert await ost.read_all("multi") == b"".join(chunks)
    await ost.close()


async def test_multipart_from_bytes_of_known_length(s3_server: S3Server) -> None:
    ost = _storage(s3_server, _bucket())
    blob = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts
    await ost.write("multi", blob)
    assert (await ost.stat("multi")).size == len(blob)
    assert await ost.read_all("multi") == blob
    await ost.close()


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_cancelled_upload_stores_nothing(s3_server: S3Server) -> None:
    bucket = _bucket()
    ost = _storage(s3_server, bucket)
    await ost.write("obj", b"old")
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield b"x" * (1024 * 1024)

    task = asyncio.create_task(ost.write("obj", endless()))
    while produced < 12:  # past the first 5 MiB part: a multipart upload is in progress
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ost.read_all("obj") == b"old"

    # The upload thread gives up and aborts the multipart upload.
    raw = _raw_client(s3_server)
    deadline = time.monotonic() + 20
    while raw._list_multipart_uploads(bucket).uploads:  # noqa: SLF001 (no public listing in minio)
        assert time.monotonic() < deadline, "multipart upload left behind"
        await asyncio.sleep(0.05)
    await ost.close()


async def test_missing_object_after_external_delete(s3_server: S3Server) -> None:
    bucket = _bucket()
    ost = _storage(s3_server, bucket)
    await ost.write("gone", b"x")
    _raw_client(s3_server).remove_object(bucket, "gone")
    with pytest.raises(NotExist):
        await ost.read("gone")
    await ost.close()


# -- listing order across pages ---------------------------------------------------------------


def _obj(name: str) -> Object:
    return Object("b", name, last_modified=None if name.endswith("/") else _NOW, size=0)


_NOW = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)


def _pages(*pages: list[str]) -> list[Object]:
    """Entries as minio yields them: per page, objects first, then common prefixes."""
    out: list[Object] = []
    for page in pages:
        out += [_obj(n) for n in sorted(page) if not n.endswith("/")]
        out += [_obj(n) for n in sorted(page) if n.endswith("/")]
    return out


@pytest.mark.parametrize(
    "pages",
    [
        [["a", "b/", "c", "d/", "e"]],
        [["a", "b/", "c"], ["d", "e/", "f"], ["g/", "h"]],
        [["a", "b", "c"], ["d", "e", "f"], ["g/", "h"]],  # pages without prefixes
        [["a/", "b/"], ["c/"], ["d", "e"]],
        [["x-1", "x/", "x0"]],
    ],
)
def test_lexical_merge_restores_order(pages: list[list[str]]) -> None:
    merged = [o.object_name for o in _lexical(_pages(*pages), page_limit=3)]
    assert merged == sorted(n for page in pages for n in page)


def test_lexical_merge_holds_at_most_a_page() -> None:
    held: list[int] = []
    entries = _pages(*[[f"{p}{i}" for i in range(3)] for p in "abcdefgh"])
    consumed = 0

    def counting() -> Any:
        nonlocal consumed
        for e in entries:
            consumed += 1
            yield e

    emitted = 0
    for _ in _lexical(counting(), page_limit=3):
        emitted += 1
        held.append(consumed - emitted)
    assert max(held) <= 3


async def test_server_restart_is_unavailable_then_recovers(tmp_path: Any) -> None:
    server = S3Server(tmp_path / "moto.log")
    server.start()
    try:
        ost = _storage(server, _bucket())
        await ost.write("before", b"1")
        server.stop()
        with pytest.raises(Unavailable):
            await ost.write("during", b"2")
        with pytest.raises(Unavailable):
            await ost.stat("before")

        server.start()  # same port, empty (moto keeps everything in memory): the bucket is gone

        async def write_succeeds() -> bool:
            try:
                await ost.write("after", b"3")
            except Unavailable:
                return False
            return True

        # A caller retrying (as the background loops do) gets through: the bucket is re-created.
        await wait_for(write_succeeds, timeout=30, interval=0.2, message="write after S3 restart")
        assert await ost.read_all("after") == b"3"
        await ost.close()
    finally:
        server.stop()
