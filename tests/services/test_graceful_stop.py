"""``agola serve`` stops fast on SIGTERM even with run event streams open: long-lived responses
are cut when their server stops listening instead of holding the stop for the shutdown timeout.

The bound is generous (timing belongs in benchmarks): the point is that the stop no longer waits
for ``--shutdown-timeout`` (its 10 s default).
"""

from __future__ import annotations

import http.client
import signal
import time
from pathlib import Path

from agola.config import INTERNAL_API_TOKEN_FILE
from tests.e2e.split import ServeProcess
from tests.support.services import free_port

ADMIN = "stop-test-admin-token-0123456789abcdef"


def _open_events(port: int, path: str, token: str) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"token {token}"})
    resp = conn.getresponse()
    assert resp.status == 200, (path, resp.status, resp.read())
    assert resp.read(len(b": connected\n\n")) == b": connected\n\n"
    return conn


def test_sigterm_with_event_streams_open_stops_at_once(tmp_path: Path) -> None:
    ports = {r: free_port() for r in ("gateway", "runservice", "configstore", "gitserver")}
    config = f"dataDir: {tmp_path / 'data'}\n" + "".join(
        f"{role}:\n  web: {{listenAddress: '127.0.0.1:{port}'}}\n" for role, port in ports.items())
    config = config.replace("gateway:\n", f"gateway:\n  adminToken: {ADMIN}\n")
    serve = ServeProcess(tmp_path, "serve", config, "runservice,configstore,gateway,gitserver",
                         f"http://127.0.0.1:{ports['gateway']}")
    serve.start()
    streams: list[http.client.HTTPConnection] = []
    try:
        internal = (tmp_path / "data" / INTERNAL_API_TOKEN_FILE).read_text().strip()
        streams.append(_open_events(ports["runservice"], "/api/v1alpha/runs/events", internal))
        streams.append(_open_events(ports["gateway"], "/api/v1alpha/runs/events", ADMIN))
        assert serve.proc is not None
        started = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        code = serve.proc.wait(20)
        elapsed = time.monotonic() - started
        assert code == 0, serve.stderr[-3000:]
        assert elapsed < 5, f"stopped in {elapsed:.1f}s: the streams held the stop"
    finally:
        for conn in streams:
            conn.close()
        serve.close()
