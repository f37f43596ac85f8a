"""The factory picks the backend from the role configuration."""

from __future__ import annotations

from pathlib import Path

import attrs

from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.coord.etcd import EtcdCoordination
from agola.storage.coord.factory import open_coordination
from tests.support.services import EtcdServer


@attrs.frozen
class FakeEtcdSection:  # the shape of agola.config.Etcd
    endpoints: str
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_skip_verify: bool = False


async def test_no_etcd_section_means_embedded_under_the_data_dir(tmp_path: Path) -> None:
    coord = await open_coordination(None, tmp_path, "runservice/")
    try:
        assert isinstance(coord, EmbeddedCoordination)
        await coord.put("k", b"v")
        assert (tmp_path / "coord" / "coord.db").exists()
    finally:
        await coord.close()


async def test_etcd_section_means_etcd(etcd_server: EtcdServer, tmp_path: Path) -> None:
    section = FakeEtcdSection(endpoints=f" {etcd_server.endpoint} , ")
    coord = await open_coordination(section, tmp_path, "factory-test/")
    try:
        assert isinstance(coord, EtcdCoordination)
        rev = await coord.put("k", b"v")
        kv = await coord.get("k")
        assert kv is not None and kv.mod_revision == rev
        assert not (tmp_path / "coord").exists()
    finally:
        await coord.delete("", prefix=True)
        await coord.close()


def test_the_config_model_fits_the_factory() -> None:
    try:
        from agola.config import Etcd
    except ImportError:  # the config module is another area's; nothing to check without it
        return
    section = Etcd(endpoints="http://127.0.0.1:2379")
    assert section.endpoints and section.tls_skip_verify is False
