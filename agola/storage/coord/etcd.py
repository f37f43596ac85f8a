"""Coordination on an etcd v3 cluster, over gRPC with aetcd's generated stubs.

aetcd's high-level ``Client`` lacks what we rely on (range at a revision, arbitrary txn compares
and responses, one watch stream per watcher, TLS, a keepalive loop, a queued mutex), so this
module talks to etcd through the protobuf stubs aetcd ships (``aetcd.rpc``) on a ``grpc.aio``
channel of its own, and adds:

- a key prefix on every key;
- watches that resume after a stream error or a server restart from ``last mod_revision + 1``
  (etcd never splits one revision across watch responses, so nothing is lost or repeated), with
  backoff while the server is down, and ``Compacted`` when history is gone;
- leases kept alive by ``KeepaliveLease`` (refresh every ttl/3);
- the clientv3-style queued mutex (``QueuedMutex``);
- every unary call bounded by ``timeout``; connection failures raised as ``Unavailable``.

aetcd (grpc + protobuf) is imported lazily: it costs ~0.3 s at import.
"""

from __future__ import annotations

import asyncio
import math
import os
import ssl
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from agola.errors import AgolaError, BadRequest, Internal, NotExist, Unavailable
from agola.storage.coord.base import (
    Closed,
    Compacted,
    Compare,
    Coordination,
    Delete,
    Event,
    Get,
    KeyValue,
    Lease,
    Mutex,
    Op,
    Put,
    RangeResult,
    TxnResult,
    Watcher,
)
from agola.storage.coord.embedded import prefix_end
from agola.storage.coord.lease import KeepaliveLease
from agola.storage.coord.mutex import QueuedMutex
from agola.util.log import get_logger

if TYPE_CHECKING:
    import grpc.aio

log = get_logger(__name__)

T = TypeVar("T")

# Reconnect fast after an outage (gRPC's default backoff grows to two minutes), and ping an idle
# connection so a dead server is noticed (etcd refuses pings more often than every 5 s).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]

_OPS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}
_TARGETS = {"value": "VALUE", "mod": "MOD", "create": "CREATE", "version": "VERSION"}
_TARGET_FIELD = {"value": "value", "mod": "mod_revision", "create": "create_revision", "version": "version"}


def _rpc() -> Any:
    from aetcd import rpc  # noqa: PLC0415 - slow import, only when etcd is used

    return rpc


def map_grpc_error(exc: BaseException, what: str) -> AgolaError:
    """Turn a gRPC failure into the project's typed errors (never leaking credentials)."""
    import grpc  # noqa: PLC0415

    if isinstance(exc, AgolaError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Unavailable(f"etcd {what}: timed out")
    if not isinstance(exc, grpc.aio.AioRpcError):
        return Unavailable(f"etcd {what}: {exc!r}")
    code, details = exc.code(), exc.details() or ""
    msg = f"etcd {what}: {details}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Unavailable(msg)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotExist(msg)
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return Compacted(msg)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION):
        return BadRequest(msg)
    if code == grpc.StatusCode.UNAUTHENTICATED or code == grpc.StatusCode.PERMISSION_DENIED:
        return Unavailable(msg)
    return Internal(msg)


def _target(endpoints: list[str]) -> tuple[str, bool]:
    """A gRPC target for the endpoints, and whether they use TLS (``https://``)."""
    hosts: list[tuple[str, int]] = []
    tls = False
    for ep in endpoints:
        ep = ep.strip()
        if not ep:
            continue
        url = urlsplit(ep if "://" in ep else f"http://{ep}")
        tls = tls or url.scheme == "https"
        hosts.append((url.hostname or "127.0.0.1", url.port or 2379))
    if not hosts:
        raise BadRequest("etcd: no endpoints configured")
    if len(hosts) > 1 and all(_is_ipv4(h) for h, _ in hosts):
        # gRPC fails over between the addresses of one ipv4: target.
        return "ipv4:" + ",".join(f"{h}:{p}" for h, p in hosts), tls
    h, p = hosts[0]
    return f"{h}:{p}", tls


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(x.isdigit() for x in parts)


class EtcdCoordination(Coordination):
    def __init__(
        self,
        endpoints: list[str],
        prefix: str,
        *,
        tls_cert_file: str = "",
        tls_key_file: str = "",
        tls_ca_file: str = "",
        tls_skip_verify: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self._target, self._tls = _target(endpoints)
        self._tls = self._tls or bool(tls_ca_file or tls_cert_file)
        self._tls_files = (tls_cert_file, tls_key_file, tls_ca_file)
        self._tls_skip_verify = tls_skip_verify
        self._prefix = prefix.encode()
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stubs: tuple[Any, Any, Any] | None = None
        self._leases: set[KeepaliveLease] = set()
        self._watchers: set[_EtcdWatcher] = set()
        self._closed = False

    # -- plumbing ----------------------------------------------------------------------------------

    def _channel_credentials(self) -> Any:
        import grpc  # noqa: PLC0415

        cert_file, key_file, ca_file = self._tls_files

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        root = read(ca_file)
        options: list[tuple[str, Any]] = []
        if root is None and self._tls_skip_verify:
            # gRPC cannot skip verification: trust whatever certificate the server presents now.
            root, name = _server_certificate(self._target)
            if name:
                options.append(("grpc.ssl_target_name_override", name))
        creds = grpc.ssl_channel_credentials(root, read(key_file), read(cert_file))
        return creds, options

    def _stub(self) -> tuple[Any, Any, Any]:
        if self._closed:
            raise Closed("etcd coordination client is closed")
        if self._stubs is None:
            import grpc.aio  # noqa: PLC0415

            rpc = _rpc()
            if self._tls:
                creds, extra = self._channel_credentials()
                self._channel = grpc.aio.secure_channel(self._target, creds, options=_CHANNEL_OPTIONS + extra)
            else:
                self._channel = grpc.aio.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
            self._stubs = (rpc.KVStub(self._channel), rpc.WatchStub(self._channel), rpc.LeaseStub(self._channel))
        return self._stubs

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, bound: bool = False) -> T:
        """Await ``fn()``, mapping errors. Unary gRPC calls carry their own deadline (the
        ``timeout=`` every caller passes); ``bound=True`` adds one for multi-step calls."""
        try:
            if bound:
                # Not wait_for: on 3.11 it can swallow a cancellation racing the timeout, and every
                # background loop stops through a cancellation that lands in a coordination call.
                async with asyncio.timeout(self._timeout + 1):
                    return await fn()
            return await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to typed errors
            raise map_grpc_error(exc, what) from None

    def _k(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _range_of(self, key: str, is_prefix: bool) -> tuple[bytes, bytes]:
        k = self._k(key)
        if not is_prefix:
            return k, b""
        return k, prefix_end(k) or b"\0"

    def _kv(self, kv: Any) -> KeyValue:
        return KeyValue(
            kv.key[len(self._prefix):].decode(), bytes(kv.value), kv.create_revision, kv.mod_revision, kv.version, kv.lease
        )

    def _event(self, ev: Any, rpc: Any) -> Event:
        prev = self._kv(ev.prev_kv) if ev.HasField("prev_kv") and ev.prev_kv.create_revision else None
        if ev.type == rpc.Event.DELETE:
            return Event("delete", KeyValue(ev.kv.key[len(self._prefix):].decode(), b"", 0, ev.kv.mod_revision, 0, 0), prev)
        return Event("put", self._kv(ev.kv), prev)

    # -- kv ----------------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        kvstub = self._stub()[0]
        req = _rpc().RangeRequest(key=self._k(key))
        resp = await self._call("get", lambda: kvstub.Range(req, timeout=self._timeout))
        return self._kv(resp.kvs[0]) if resp.kvs else None

    async def range(self, prefix: str, *, revision: int = 0, limit: int = 0) -> RangeResult:
        kvstub = self._stub()[0]
        start, end = self._range_of(prefix, True)
        req = _rpc().RangeRequest(key=start, range_end=end, revision=revision, limit=limit)
        resp = await self._call("range", lambda: kvstub.Range(req, timeout=self._timeout))
        return RangeResult([self._kv(kv) for kv in resp.kvs], resp.header.revision)

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        kvstub = self._stub()[0]
        req = _rpc().PutRequest(key=self._k(key), value=value, lease=lease)
        resp = await self._call("put", lambda: kvstub.Put(req, timeout=self._timeout))
        return int(resp.header.revision)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        kvstub = self._stub()[0]
        start, end = self._range_of(key, prefix)
        req = _rpc().DeleteRangeRequest(key=start, range_end=end)
        resp = await self._call("delete", lambda: kvstub.DeleteRange(req, timeout=self._timeout))
        return int(resp.deleted)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] | None = None
    ) -> TxnResult:
        rpc = _rpc()
        kvstub = self._stub()[0]
        req = rpc.TxnRequest(
            compare=[self._compare(c, rpc) for c in compare],
            success=[self._op(op, rpc) for op in success],
            failure=[self._op(op, rpc) for op in failure or []],
        )
        resp = await self._call("txn", lambda: kvstub.Txn(req, timeout=self._timeout))
        rev = int(resp.header.revision)
        responses: list[RangeResult | None] = []
        for r in resp.responses:
            if r.WhichOneof("response") == "response_range":
                responses.append(RangeResult([self._kv(kv) for kv in r.response_range.kvs], rev))
            else:
                responses.append(None)
        return TxnResult(bool(resp.succeeded), rev, responses)

    def _compare(self, c: Compare, rpc: Any) -> Any:
        if c.op not in _OPS or c.target not in _TARGETS:
            raise BadRequest(f"unsupported compare {c!r}")
        msg = rpc.Compare(
            key=self._k(c.key), result=getattr(rpc.Compare, _OPS[c.op]), target=getattr(rpc.Compare, _TARGETS[c.target])
        )
        setattr(msg, _TARGET_FIELD[c.target], c.operand)
        return msg

    def _op(self, op: Op, rpc: Any) -> Any:
        if isinstance(op, Put):
            return rpc.RequestOp(request_put=rpc.PutRequest(key=self._k(op.key), value=op.value, lease=op.lease))
        if isinstance(op, Delete):
            start, end = self._range_of(op.key, op.prefix)
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=start, range_end=end))
        if isinstance(op, Get):
            start, end = self._range_of(op.key, op.prefix)
            return rpc.RequestOp(request_range=rpc.RangeRequest(key=start, range_end=end))
        raise BadRequest(f"unknown txn op {op!r}")

    async def revision(self) -> int:
        kvstub = self._stub()[0]
        req = _rpc().RangeRequest(key=self._prefix or b"\0", count_only=True)
        resp = await self._call("revision", lambda: kvstub.Range(req, timeout=self._timeout))
        return int(resp.header.revision)

    async def compact(self, revision: int) -> None:
        """Compact etcd's history below ``revision`` (cluster-wide: every prefix is affected)."""
        kvstub = self._stub()[0]
        req = _rpc().CompactionRequest(revision=revision, physical=False)
        await self._call("compact", lambda: kvstub.Compact(req, timeout=self._timeout))

    # -- watch -------------------------------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: int = 0) -> Watcher:
        watcher = _EtcdWatcher(self, prefix, start_revision)
        self._watchers.add(watcher)
        return watcher

    # -- leases and mutex --------------------------------------------------------------------------

    async def grant_lease(self, ttl: float) -> Lease:
        if ttl <= 0:
            raise BadRequest("lease TTL must be positive")
        rpc = _rpc()
        leasestub = self._stub()[2]
        req = rpc.LeaseGrantRequest(TTL=max(1, math.ceil(ttl)))
        resp = await self._call("lease grant", lambda: leasestub.LeaseGrant(req, timeout=self._timeout))
        if resp.error:
            raise Unavailable(f"etcd lease grant: {resp.error}")
        lease_id = int(resp.ID)

        async def refresh() -> float:
            stub = self._stub()[2]

            async def once() -> float:
                call = stub.LeaseKeepAlive(timeout=self._timeout)
                try:
                    await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                    reply = await call.read()
                finally:
                    call.cancel()
                if reply is None or not hasattr(reply, "TTL"):
                    raise Unavailable("etcd lease keepalive: stream ended")
                return float(reply.TTL)

            return await self._call("lease keepalive", once, bound=True)

        async def revoke() -> None:
            stub = self._stub()[2]
            try:
                await self._call(
                    "lease revoke", lambda: stub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id), timeout=self._timeout)
                )
            except NotExist:
                pass  # already expired: same outcome

        lease = KeepaliveLease(lease_id, float(resp.TTL), refresh, revoke)
        self._leases.add(lease)
        lease._task.add_done_callback(lambda _t: self._leases.discard(lease))
        return lease

    def mutex(self, key: str, *, ttl: float = 5.0) -> Mutex:
        return QueuedMutex(self, key, ttl)

    async def close(self) -> None:
        if self._closed:
            return
        for watcher in list(self._watchers):
            await watcher.aclose()
        for lease in list(self._leases):
            await lease.close()
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stubs = None


class _EtcdWatcher(Watcher):
    """One gRPC watch stream, re-created from the next revision whenever it breaks."""

    _MAX_BACKOFF = 2.0

    def __init__(self, coord: EtcdCoordination, prefix: str, start_revision: int) -> None:
        self._coord = coord
        self._key, self._end = coord._range_of(prefix, True)
        self._next = start_revision
        self._call: Any = None
        self._buf: deque[Event] = deque()
        self._closed = False
        self._backoff = 0.1

    async def __aenter__(self) -> _EtcdWatcher:
        # Pinning "now" is one bounded call: entering fails with Unavailable rather than wait
        # for a server that is down (iterating, by contrast, waits for events and outages alike).
        if self._next == 0:
            self._next = await self._coord.revision() + 1
        return self

    def __aiter__(self) -> _EtcdWatcher:
        return self

    async def _pin(self) -> None:
        """Turn "from now on" into a revision, so a resume point always exists."""
        while self._next == 0 and not self._closed:
            try:
                self._next = await self._coord.revision() + 1
            except Unavailable as exc:
                await self._wait_out(exc)

    async def _wait_out(self, exc: BaseException) -> None:
        log.warning("etcd watch interrupted, retrying", error=str(exc), next_revision=self._next)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self._MAX_BACKOFF)

    async def __anext__(self) -> Event:
        while True:
            if self._buf:
                return self._buf.popleft()
            if self._closed:
                raise StopAsyncIteration
            await self._pin()
            try:
                if self._call is None:
                    await self._open()
                self._handle(await self._call.read())
            except asyncio.CancelledError:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            except Compacted:
                raise
            except Exception as exc:  # noqa: BLE001 - stream broken: resume from self._next
                self._drop_call()
                if self._closed:
                    raise StopAsyncIteration from None
                await self._wait_out(map_grpc_error(exc, "watch"))

    async def _open(self) -> None:
        rpc = _rpc()
        watchstub = self._coord._stub()[1]
        call = watchstub.Watch()
        self._call = call
        create = rpc.WatchCreateRequest(key=self._key, range_end=self._end, start_revision=self._next, prev_kv=True)
        async with asyncio.timeout(self._coord._timeout):  # not wait_for (see _call)
            await call.write(rpc.WatchRequest(create_request=create))
        async with asyncio.timeout(self._coord._timeout):
            first = await call.read()
        self._handle(first)

    def _handle(self, resp: Any) -> None:
        import grpc.aio  # noqa: PLC0415

        if resp is grpc.aio.EOF or resp is None:
            raise Unavailable("etcd watch: stream ended")
        if resp.compact_revision:
            self._drop_call()
            raise Compacted(
                f"etcd watch from revision {self._next}: history compacted", compact_revision=int(resp.compact_revision)
            )
        if resp.canceled:
            raise Unavailable(f"etcd watch canceled: {resp.cancel_reason}")
        self._backoff = 0.1
        if resp.events:
            rpc = _rpc()
            self._buf.extend(self._coord._event(ev, rpc) for ev in resp.events)
            self._next = int(resp.events[-1].kv.mod_revision) + 1

    def _drop_call(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def aclose(self) -> None:
        self._closed = True
        self._buf.clear()
        self._drop_call()
        self._coord._watchers.discard(self)


def _server_certificate(target: str) -> tuple[bytes, str]:
    """The certificate an endpoint presents (PEM) and a name it is valid for (TLS skip-verify)."""
    hostport = target.split(":", 1)[1] if target.startswith("ipv4:") else target
    hostport = hostport.split(",")[0]
    host, _, port = hostport.rpartition(":")
    pem = ssl.get_server_certificate((host, int(port)))
    name = ""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
    try:
        decoded = ssl._ssl._test_decode_cert(f.name)  # type: ignore[attr-defined]  # private, the only stdlib PEM cert decoder
        names = [v for k, v in decoded.get("subjectAltName", ()) if k == "DNS"]
        name = names[0] if names else ""
    except Exception:  # noqa: BLE001 - fall back to the host name
        name = ""
    finally:
        os.unlink(f.name)
    return pem.encode(), name
