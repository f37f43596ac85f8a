"""Files and directories under a ``dataDir`` that only the agola user may read.

Data directories hold secret values (readdb databases, coordination stores, generated keys and
tokens, git repositories, task logs): every directory is 0700 and every file 0600. ``agola serve``
sets the process umask to 077 so that code writing there needs nothing special; the helpers below
are for the files that must be private whatever the umask (generated credentials) and for the
directories that storage code creates outside ``serve`` (tests, tools).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "PRIVATE_UMASK",
    "generated_secret",
    "private_dir",
    "write_private",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_dir(path: str | Path) -> Path:
    """``mkdir -p`` whose newly created directories are 0700 whatever the umask.

    An existing ``path`` of ours readable by others (a data directory made by an older version)
    is tightened to 0700; its parents are left alone (they may be ``/var/lib``).
    """
    p = Path(path)
    missing: list[Path] = []
    current = p
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # created concurrently: its creator chose its mode
        os.chmod(d, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    if not missing:
        st = p.stat()
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(p, PRIVATE_DIR_MODE)
    return p


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically as a 0600 file (its directory made private if new)."""
    p = Path(path)
    private_dir(p.parent)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generated_secret(path: str | Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret kept in ``path``, created with ``make()`` (0600) when absent or empty.

    Returns ``(value, created)``. Surrounding whitespace of the stored value is ignored, so an
    operator may write the file by hand with an editor.
    """
    p = Path(path)
    try:
        value = p.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value, False
    value = make()
    write_private(p, value.encode() + b"\n")
    return value, True
