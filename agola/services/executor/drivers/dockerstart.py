"""Container 0's startup: its pid 1 creates the task's working dir before it starts waiting.

A ``docker exec`` costs three API round trips and a runc process setup (50-150 ms): the pod setup
used to pay one only to ``mkdir -p`` the working dir. Container 0 runs our busybox as pid 1 anyway
(unless the task gives it an entrypoint), so that pid 1 creates the dir first and prints the
result as its first output line::

    agola-workdir:/root/project        (created, or already there)
    agola-workdir-failed               (e.g. a HOME the user cannot write)

The driver reads that line from the container's log stream (one request, sent right after the
start) while it starts the service containers. ``~`` is expanded by the shell with the ``$HOME``
Docker gives pid 1, the same a step exec of the same user gets, so this is only done when the
steps run as container 0's own user; otherwise, or on any doubt (a failure line, no line within
``WORKDIR_TIMEOUT``, a log driver that cannot be read), ``DockerPod.make_working_dir`` falls back
to its exec, which also knows how to create a dir the user may not create itself.

With a step runner (``dockerrunner``), pid 1 is that runner: it opens the request and status FIFOs
the executor made in the pod's io dir, creates the working dir the same way, says ``hello <uid>
<working dir>`` on the status FIFO (no log stream to read), then runs one request at a time. If it
cannot open the FIFOs it goes on as the plain sleeper above.
"""

from __future__ import annotations

import asyncio
import posixpath

import aiodocker
from aiodocker.exceptions import DockerError

from agola.services.executor.drivers.dockerio import POD_IO_DIR
from agola.services.executor.drivers.dockerstream import FRAME_HEADER
from agola.util.log import get_logger

log = get_logger(__name__)

HELPER_DIR = "/.agola"
BUSYBOX = f"{HELPER_DIR}/bin/busybox"
# pid 1 of container 0: ignores TERM/INT, reaps zombies in `wait` (ash waits for any child), and
# exits 0 when its stdin ends: the executor closes it at the end of the task (``dockerend``).
# Background commands get /dev/null as stdin, hence fd 3. A `cat` killed by a step is restarted;
# one failing otherwise is retried once a second (no busy loop).
SLEEP_LOOP = (
    f"trap : TERM INT; exec 3<&0; while :; do {BUSYBOX} cat <&3 >/dev/null & wait $!; s=$?; "
    f'[ $s = 0 ] && exit 0; [ $s -gt 128 ] || {BUSYBOX} sleep 1; done'
)
SLEEPER = (BUSYBOX, "sh", "-c", SLEEP_LOOP)
WORKDIR_MARK = b"agola-workdir:"
WORKDIR_TIMEOUT = 10.0
_MAX_LINE = 64 * 1024
# $1 = "~" (relative to $HOME) or "" (absolute), $2 = the rest of the path.
_MKDIR_WORKDIR = (
    'if [ "$1" = "~" ]; then d="$HOME$2"; else d="$2"; fi; '
    f'if {BUSYBOX} mkdir -p "$d" 2>/dev/null; then printf "agola-workdir:%s\\n" "$d"; '
    "else echo agola-workdir-failed; fi; "
)


# pid 1 as the step runner; $1 = "1" if a working dir is asked, $2 $3 = workdir_args, $4 $5 = the
# request and status FIFOs (names in the io dir). A request is a line "<id> <mode> [<pty>]": the subshell
# (a fork of pid 1, so the step gets default signal dispositions, unlike a background job) sources
# the executor's code from the FIFO <id>.c, which ends by exec'ing the step's command; its output
# goes to the pty /dev/pts/<pty> the executor opened (mode t), the FIFO <id>.o (o), or <id>.o and
# <id>.e (e). Mode x: exit 0.
# The status line "<id> <exit status>" goes back once the subshell has ended; waiting for it also
# reaps the orphans the steps left to pid 1.
RUNNER_SCRIPT = (
    f"trap : TERM INT; R={POD_IO_DIR}; "
    'if { command exec 4<>"$R/$4" 5<>"$R/$5"; } 2>/dev/null; then '
    'w=-; if [ -n "$1" ]; then if [ "$2" = "~" ]; then d="$HOME$3"; else d="$3"; fi; '
    f'if {BUSYBOX} mkdir -p "$d" 2>/dev/null; then w="$d"; else w="!"; fi; fi; '
    f'echo "hello $({BUSYBOX} id -u) $w" >&5; '
    'while :; do read -r i m n <&4 || continue; f="$R/$i"; case $m in '
    't) ( exec 3<&- 4<&- 5<&-; . "$f.c" ) </dev/pts/"$n" >/dev/pts/"$n" 2>&1;; '
    'o) ( exec 3<&- 4<&- 5<&-; . "$f.c" ) </dev/null >"$f.o" 2>&1;; '
    'e) ( exec 3<&- 4<&- 5<&-; . "$f.c" ) </dev/null >"$f.o" 2>"$f.e";; '
    "x) exit 0;; *) continue;; esac; "
    'echo "$i $?" >&5; done; fi; shift; '
)


def workdir_args(path: str) -> tuple[str, str]:
    """``(mode, rest)`` for the startup script: ``("~", "/project")`` for ``~/project``."""
    if path == "~" or path.startswith("~/"):
        return "~", path[1:]
    return "", posixpath.normpath(posixpath.join("/", path))


def sleeper(workdir: str = "") -> tuple[str, ...]:
    """Container 0's entrypoint; with ``workdir``, it first creates it and says so."""
    if not workdir:
        return SLEEPER
    mode, rest = workdir_args(workdir)
    return (BUSYBOX, "sh", "-c", "trap : TERM INT; " + _MKDIR_WORKDIR + SLEEP_LOOP, "agola-init", mode, rest)


def runner(workdir: str, request: str, status: str) -> tuple[str, ...]:
    """Container 0's entrypoint as the step runner (``request``/``status``: FIFO names in the io
    dir); the plain sleeper (``sleeper``) when it cannot open them."""
    mode, rest = workdir_args(workdir) if workdir else ("", "")
    # Then as the plain sleeper (after the `shift`, $1 $2 are workdir_args).
    script = RUNNER_SCRIPT + (_MKDIR_WORKDIR if workdir else "") + SLEEP_LOOP
    return (BUSYBOX, "sh", "-c", script, "agola-init", "1" if workdir else "", mode, rest, request, status)


async def read_workdir(docker: aiodocker.Docker, container_id: str, timeout: float = WORKDIR_TIMEOUT) -> str | None:
    """The working dir container 0 created, from its first output line; None if it did not."""
    try:
        async with asyncio.timeout(timeout):
            line = await _first_line(docker, container_id)
    except (TimeoutError, DockerError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        log.info("container 0 did not report its working dir: creating it with an exec",
                 container=container_id[:12], error=repr(exc))
        return None
    if not line.startswith(WORKDIR_MARK):
        return None
    path = line[len(WORKDIR_MARK):].decode(errors="surrogateescape")
    return path if path.startswith("/") else None


async def _first_line(docker: aiodocker.Docker, container_id: str) -> bytes:
    params = {"follow": "1", "stdout": "1", "stderr": "0"}
    async with docker._query(f"containers/{container_id}/logs", method="GET", params=params, timeout=None) as response:
        line = bytearray()
        while b"\n" not in line and len(line) < _MAX_LINE:
            _, size = FRAME_HEADER.unpack(await response.content.readexactly(FRAME_HEADER.size))
            line += await response.content.readexactly(size)
    return bytes(line.split(b"\n", 1)[0])


__all__ = ["BUSYBOX", "HELPER_DIR", "SLEEPER", "read_workdir", "runner", "sleeper", "workdir_args"]
