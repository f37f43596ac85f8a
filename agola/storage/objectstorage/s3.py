"""Object storage on an S3-compatible server, through the official (synchronous) ``minio`` client.

Every client call runs in a worker thread, so the event loop never blocks on the network:

- short calls (stat, delete, one listing page, one read chunk) use the default executor;
- uploads hold a thread for their whole duration, so they get a private executor: a flood of
  uploads waiting on their (possibly thread-backed) sources can never starve the default one.

Streams of unknown length are uploaded with S3 multipart (``length=-1``): a ``_StreamBridge`` turns
the async byte iterator into a blocking ``read(n)`` that minio calls from its thread, through a
bounded queue. Memory is bounded by a few parts (minio uploads at most ``parallel_uploads`` parts
at once, each ``part_size`` bytes), never the whole object.

The bucket is created if missing, lazily, before the first operation (or eagerly with ``open()``):
a server that is down at start-up makes operations fail with ``Unavailable`` until it is back,
instead of preventing the process from starting.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import io
import itertools
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from agola.errors import BadRequest, Internal, NotExist, Unavailable
from agola.storage.objectstorage._threads import Tracked
from agola.storage.objectstorage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectReader,
    ObjectStorage,
    validate_path,
    validate_prefix,
)
from agola.util.log import get_logger

log = get_logger(__name__)

MiB = 1024 * 1024
# S3's minimum part size; also the unit of memory one in-flight part costs.
DEFAULT_PART_SIZE = 5 * MiB
DEFAULT_PARALLEL_UPLOADS = 2
# Chunks the bridge may hold between the async source and the uploading thread.
_BRIDGE_QUEUE_CHUNKS = 4
# S3 never returns more than this many entries (objects + common prefixes) per listing page.
_S3_PAGE_LIMIT = 1000
_LIST_BATCH = 256

_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_EXISTING_BUCKET_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}

T = TypeVar("T")


def parse_endpoint(endpoint: str, disable_tls: bool) -> tuple[str, bool]:
    """``(host[:port], secure)`` from a URL (its scheme decides TLS) or ``host[:port]`` + disableTLS."""
    if not endpoint:
        raise BadRequest("object storage: empty S3 endpoint")
    if "://" not in endpoint:
        return endpoint.rstrip("/"), not disable_tls
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https"):
        raise BadRequest(f"object storage: S3 endpoint scheme must be http or https, not {url.scheme!r}")
    if url.path not in ("", "/") or url.query or url.fragment or not url.netloc:
        raise BadRequest("object storage: S3 endpoint must be scheme://host[:port] without a path")
    return url.netloc, url.scheme == "https"


def _http_client() -> urllib3.PoolManager:
    # minio's default retries 5 times with growing backoff; fail faster so callers (and their own
    # backoff loops) learn about an unreachable server within a couple of seconds.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=300),
        maxsize=16,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]),
    )


def _translate(exc: BaseException, path: str | None) -> BaseException:
    """Map minio / urllib3 / socket errors to the project's typed errors (no secrets in messages)."""
    what = f"object {path!r}" if path else "object storage"
    if isinstance(exc, S3Error):
        if exc.code in _MISSING_CODES:
            return NotExist(f"{what} does not exist")
        if exc.code == "NoSuchBucket":
            return Unavailable(f"{what}: bucket {exc.bucket_name!r} does not exist")
        return Internal(f"{what}: S3 error {exc.code}: {exc.message}")
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return Unavailable(f"{what}: S3 server error: {exc}")
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError, MinioException)):
        return Unavailable(f"{what}: S3 server unreachable: {type(exc).__name__}")
    return exc


class _SourceFailed(Exception):
    """Carries an error of the caller's stream (or of its size) through minio's thread untouched."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Aborted(Exception):
    """The async side gave up on this upload (cancelled): make minio abort the multipart upload."""


_EOF = object()


class _StreamBridge:
    """A blocking file-like ``read(n)`` over an async byte stream, fed through a bounded queue.

    ``pump()`` runs on the event loop; ``read()`` runs in minio's uploading thread and waits on the
    loop for each chunk. ``abort()`` (loop side) makes a waiting or future ``read()`` raise.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, source: AsyncIterable[bytes], expected_size: int | None
    ) -> None:
        self._loop = loop
        self._source = source
        self._expected_size = expected_size
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=_BRIDGE_QUEUE_CHUNKS)
        self._leftover = b""
        self._eof = False
        self._aborted = False
        self.size = 0

    async def pump(self) -> None:
        try:
            async for chunk in self._source:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise BadRequest(f"object stream yielded {type(chunk).__name__}, not bytes")
                if chunk:
                    await self._queue.put(bytes(chunk))
            await self._queue.put(_EOF)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader thread, which fails the upload with it
            await self._queue.put(_SourceFailed(exc))

    def abort(self) -> None:
        self._aborted = True
        try:
            self._queue.put_nowait(_Aborted())
        except asyncio.QueueFull:
            pass  # the reader is not waiting: it sees the flag before its next wait

    def _next_item(self) -> object:
        if self._aborted:
            raise _Aborted()
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
        except RuntimeError:  # the loop is closed
            raise _Aborted() from None
        # Wait on this one future until it resolves: cancelling a get that has just taken an item
        # would silently drop a chunk. The timeout only lets us notice a loop closed under us.
        while True:
            try:
                return future.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                if self._loop.is_closed():
                    raise _Aborted() from None
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                raise _Aborted() from None  # the loop is shutting down and cancelled our get

    def read(self, size: int = -1) -> bytes:
        parts = [self._leftover] if self._leftover else []
        have = len(self._leftover)
        self._leftover = b""
        while not self._eof and (size < 0 or have < size):
            item = self._next_item()
            if item is _EOF:
                self._eof = True
                if self._expected_size is not None and self.size != self._expected_size:
                    raise _SourceFailed(
                        BadRequest(f"object stream has {self.size} bytes, expected {self._expected_size}")
                    )
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            self.size += len(item)
            parts.append(item)
            have += len(item)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if size >= 0 and len(data) > size:
            data, self._leftover = data[:size], data[size:]
        return data


class _S3Reader(ObjectReader):
    def __init__(self, response: Any, path: str) -> None:
        self._response = response
        self._path = path
        self._io = Tracked()
        self._closed = False

    async def _chunks(self) -> AsyncIterator[bytes]:
        # One chunk per hop: holding several fresh 1 MiB buffers at once defeats malloc's reuse
        # of freed memory, which costs more than the hop (~0.1 ms).
        while True:
            try:
                chunk = await self._io.run(self._response.read, CHUNK_SIZE)
            except Exception as exc:
                raise _translate(exc, self._path) from exc
            if not chunk:
                return
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._io.then(self._release)

    def _release(self) -> None:
        self._response.close()
        self._response.release_conn()


def _lexical(entries: Iterable[Object], page_limit: int = _S3_PAGE_LIMIT) -> Iterator[Object]:
    """Restore one lexical order in a delimiter listing.

    Each S3 page covers a contiguous key range, but minio yields a page's objects first and its
    common prefixes after. Objects are held back until no prefix of their page can precede them:
    when a prefix arrives (emit the smaller ones), when a new page starts (an object right after a
    prefix), or when more than a page's worth is held (the oldest belongs to a finished page).
    """
    pending: collections.deque[Object] = collections.deque()
    after_prefix = False
    for entry in entries:
        if _is_common_prefix(entry):
            while pending and pending[0].object_name < entry.object_name:  # type: ignore[operator]  # listed entries always have a name
                yield pending.popleft()
            yield entry
            after_prefix = True
            continue
        if after_prefix:
            yield from pending
            pending.clear()
            after_prefix = False
        pending.append(entry)
        if len(pending) > page_limit:
            yield pending.popleft()
    yield from pending


def _is_common_prefix(entry: Object) -> bool:
    return bool(entry.is_dir) and entry.last_modified is None


class S3ObjectStorage(ObjectStorage):
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        location: str = "",
        disable_tls: bool = False,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        parallel_uploads: int = DEFAULT_PARALLEL_UPLOADS,
        max_concurrent_uploads: int = 8,
    ) -> None:
        if part_size < DEFAULT_PART_SIZE:
            raise BadRequest(f"object storage: S3 part size must be at least {DEFAULT_PART_SIZE} bytes")
        host, secure = parse_endpoint(endpoint, disable_tls)
        self.endpoint = endpoint
        self.bucket = bucket
        self.location = location
        self._part_size = part_size
        self._parallel_uploads = parallel_uploads
        self._http = _http_client()
        try:
            self._client = Minio(
                host,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=location or None,
                http_client=self._http,
            )
        except ValueError as exc:
            raise BadRequest(f"object storage: invalid S3 endpoint {endpoint!r}: {exc}") from None
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()
        self._uploads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent_uploads, thread_name_prefix="agola-s3-upload"
        )

    def __repr__(self) -> str:
        return f"S3ObjectStorage(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, path: str | None = None, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            translated = _translate(exc, path)
            if translated is exc:
                raise
            if isinstance(translated, Unavailable) and isinstance(exc, S3Error) and exc.code == "NoSuchBucket":
                self._bucket_ready = False  # deleted under us: try to create it again next time
            raise translated from exc

    async def open(self) -> S3ObjectStorage:
        """Create the bucket now if missing (optional: every operation does it on first use)."""
        await self._ensure_bucket()
        return self

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if not self._bucket_ready:
                await self._call(self._make_bucket_sync)
                self._bucket_ready = True

    def _make_bucket_sync(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket, location=self.location or None)
            log.info("object storage bucket created", bucket=self.bucket)
        except S3Error as exc:
            if exc.code not in _EXISTING_BUCKET_CODES:  # created concurrently by another process
                raise

    # -- stat / read ---------------------------------------------------------------------------

    async def stat(self, path: str) -> ObjectInfo:
        validate_path(path)
        await self._ensure_bucket()
        obj = await self._call(self._client.stat_object, self.bucket, path, path=path)
        return ObjectInfo(
            path=path,
            size=int(obj.size or 0),
            last_modified=obj.last_modified.timestamp() if obj.last_modified else 0.0,
        )

    async def read(self, path: str) -> ObjectReader:
        validate_path(path)
        await self._ensure_bucket()
        response = await self._call(self._client.get_object, self.bucket, path, path=path)
        return _S3Reader(response, path)

    # -- write ---------------------------------------------------------------------------------

    async def write(
        self,
        path: str,
        data: bytes | AsyncIterable[bytes],
        *,
        size: int | None = None,
        persist: bool = True,
    ) -> None:
        # ``persist`` is moot: S3 acknowledges a PUT once it is durable.
        validate_path(path)
        if isinstance(data, (bytes, bytearray, memoryview)):
            blob = bytes(data)
            if size is not None and size != len(blob):
                raise BadRequest(f"object {path!r}: got {len(blob)} bytes, expected {size}")
            await self._ensure_bucket()
            await self._call(
                self._client.put_object,
                self.bucket,
                path,
                io.BytesIO(blob),
                len(blob),
                part_size=self._part_size,
                num_parallel_uploads=self._parallel_uploads,
                path=path,
            )
            return
        await self._ensure_bucket()
        await self._write_stream(path, data, size)

    async def _write_stream(self, path: str, data: AsyncIterable[bytes], size: int | None) -> None:
        loop = asyncio.get_running_loop()
        bridge = _StreamBridge(loop, data, size)
        pump = asyncio.create_task(bridge.pump(), name=f"s3-upload-source:{path}")
        upload = functools.partial(
            self._client.put_object,
            self.bucket,
            path,
            bridge,  # type: ignore[arg-type]  # minio only calls read(n) on its `data` argument
            -1,  # unknown length: multipart when it exceeds one part
            part_size=self._part_size,
            num_parallel_uploads=self._parallel_uploads,
        )
        try:
            await loop.run_in_executor(self._uploads, upload)
        except _SourceFailed as failed:
            raise failed.error from None
        except (asyncio.CancelledError, _Aborted):
            bridge.abort()
            raise
        except Exception as exc:
            bridge.abort()
            translated = _translate(exc, path)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                # Only swallow the pump's own cancellation, not ours.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    # -- delete --------------------------------------------------------------------------------

    async def delete(self, path: str) -> None:
        validate_path(path)
        await self._ensure_bucket()
        # S3 deletes of missing keys succeed silently; the interface promises NotExist.
        await self._call(self._delete_sync, path, path=path)

    def _delete_sync(self, path: str) -> None:
        self._client.stat_object(self.bucket, path)
        self._client.remove_object(self.bucket, path)

    # -- list ----------------------------------------------------------------------------------

    def list(
        self, prefix: str = "", *, start_after: str = "", recursive: bool = True
    ) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix, start_after, recursive)

    async def _list(self, prefix: str, start_after: str, recursive: bool) -> AsyncIterator[ObjectInfo]:
        await self._ensure_bucket()
        entries = self._entries(prefix, start_after, recursive)
        while True:
            batch = await self._call(lambda: list(itertools.islice(entries, _LIST_BATCH)))
            for info in batch:
                yield info
            if len(batch) < _LIST_BATCH:
                return

    def _entries(self, prefix: str, start_after: str, recursive: bool) -> Iterator[ObjectInfo]:
        raw: Iterable[Object] = self._client.list_objects(
            self.bucket, prefix=prefix or None, recursive=recursive, start_after=start_after or None
        )
        if not recursive:
            raw = _lexical(raw)
        for entry in raw:
            name = entry.object_name or ""
            # Servers differ on whether a common prefix equal to start_after's directory comes back
            # ("a/x/" after "a/x/1"): the contract is "strictly after", so filter here.
            if name <= start_after or not name.startswith(prefix):
                continue
            if _is_common_prefix(entry):
                yield ObjectInfo(path=name, size=0, last_modified=0.0, is_dir=True)
            elif not name.endswith("/"):  # skip "folder marker" keys made by other tools
                yield ObjectInfo(
                    path=name,
                    size=int(entry.size or 0),
                    last_modified=entry.last_modified.timestamp() if entry.last_modified else 0.0,
                )

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        self._uploads.shutdown(wait=False, cancel_futures=True)
        self._http.clear()


__all__ = ["S3ObjectStorage", "parse_endpoint"]
