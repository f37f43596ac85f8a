"""Open the Coordination a role's configuration asks for: etcd when configured, else embedded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from agola.storage.coord.base import Coordination


class EtcdSettings(Protocol):
    """What ``agola.config.Etcd`` provides (any object with these attributes will do, frozen too)."""

    @property
    def endpoints(self) -> str: ...
    @property
    def tls_cert_file(self) -> str: ...
    @property
    def tls_key_file(self) -> str: ...
    @property
    def tls_ca_file(self) -> str: ...
    @property
    def tls_skip_verify(self) -> bool: ...


async def open_coordination(
    etcd: EtcdSettings | None, data_dir: str | os.PathLike[str], prefix: str, *, timeout: float = 5.0
) -> Coordination:
    """``etcd`` None: the embedded store under ``<data_dir>/coord``; else an etcd client.

    ``prefix`` is the role's key prefix (``runservice/``, ``configstore/``, ``notification/``).
    """
    if etcd is None:
        from agola.storage.coord.embedded import EmbeddedCoordination

        return await EmbeddedCoordination.open(Path(data_dir) / "coord", prefix)
    from agola.storage.coord.etcd import EtcdCoordination

    endpoints = [e.strip() for e in str(etcd.endpoints).split(",") if e.strip()]
    return EtcdCoordination(
        endpoints,
        prefix,
        tls_cert_file=getattr(etcd, "tls_cert_file", "") or "",
        tls_key_file=getattr(etcd, "tls_key_file", "") or "",
        tls_ca_file=getattr(etcd, "tls_ca_file", "") or "",
        tls_skip_verify=bool(getattr(etcd, "tls_skip_verify", False)),
        timeout=timeout,
    )
