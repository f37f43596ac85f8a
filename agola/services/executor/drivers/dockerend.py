"""The end of a Docker pod's life: container 0 ends by itself instead of being killed.

Removing a running container (``DELETE ?force=1``, or a kill) makes the engine run ``runc kill``,
one more runc process per pod on top of the exit handling every container pays (shim, ``runc
delete``, unmounts). Measured on a private engine (Docker CPU = dockerd, containerd, shims and runc
from their cgroup, ``bench/tools/dockercpu.py``): the end of a running container 0 by force delete
76-79 ms, by itself then delete 66-70 ms; a one-step echo task, interleaved task by task, 356 ms
before (with the listing by label), 336 ms now, ``docker run --rm`` 292 ms; see docs/executor.md.

So container 0's pid 1 (``dockerstart.sleeper``) waits on its stdin, which the engine keeps open
(``OpenStdin``) until an attach closes it (``StdinOnce``): at the normal end of a task the executor
attaches to stdin and closes it, pid 1 exits 0 (the kernel then kills whatever the steps left in
the pod), and the exited container is deleted. Only the executor can do that: a step cannot close
pid 1's stdin (the engine holds the other end) nor kill pid 1 from inside the pod. A stopped or
timed-out task is still killed (``DockerPod.stop``), and any doubt (no answer, an engine error,
pid 1 not gone within ``END_TIMEOUT``) falls back to the force delete. Service containers run their
image's own command: they are force deleted first, as before (they use container 0's netns).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError
from aiodocker.stream import Stream
from yarl import URL

from agola.util.log import get_logger

log = get_logger(__name__)

# Container config of a container 0 whose pid 1 is the sleeper: ended by closing its stdin.
STDIN_CONFIG: dict[str, Any] = {"OpenStdin": True, "StdinOnce": True, "AttachStdin": False}
END_TIMEOUT = 10.0


async def end_by_itself(
    docker: aiodocker.Docker, container_id: str, timeout: float = END_TIMEOUT, *, close_stdin: bool = True
) -> bool:
    """Close the stdin of container 0 (unless its pid 1 was already told to exit: a step runner,
    ``dockerrunner``) and wait until its pid 1 has exited; False if it did not."""

    async def setup() -> tuple[URL, bytes | None, bool]:
        return URL(f"containers/{container_id}/attach").with_query({"stdin": "1", "stream": "1"}), None, False

    try:
        async with asyncio.timeout(timeout):
            if close_stdin:
                stream = Stream(docker, setup)
                try:
                    await stream._init()  # the hijacked attach; closing it closes the container's stdin
                finally:
                    await stream.close()
            async with docker._query(
                f"containers/{container_id}/wait", method="POST", params={"condition": "not-running"}, timeout=None
            ) as response:
                await response.read()
    except (TimeoutError, DockerError, aiohttp.ClientError, OSError) as exc:
        log.info("container 0 did not end by itself: removing it by force", container=container_id[:12],
                 error=repr(exc))
        return False
    return True


__all__ = ["END_TIMEOUT", "STDIN_CONFIG", "end_by_itself"]
