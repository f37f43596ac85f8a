"""The executor's persistent identity (spec §7.1): ``<dataDir>/id``, a UUIDv4 made on first start.

The id survives restarts, so a restarted executor recognises its own pods (labels) and the tasks
the runservice still assigns to it. The file is written atomically (temp file + rename): a crash
while writing never leaves a truncated id behind.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from agola.errors import BadRequest

ID_FILE = "id"
# What an id read from disk may look like: it is used in URLs and Docker label values.
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def executor_id(data_dir: str | Path) -> str:
    """The id stored in ``data_dir``, created (UUIDv4) when absent."""
    path = Path(data_dir) / ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return _create(path)
    if not _VALID_ID.match(text):
        raise BadRequest(f"executor id file {path} holds an invalid id (delete it to make a new one)")
    return text


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = str(uuid.uuid4())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(new + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        # link (not rename): if another process created the id meanwhile, keep theirs.
        os.link(tmp, path)
    except FileExistsError:
        return executor_id(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return new


__all__ = ["executor_id"]
