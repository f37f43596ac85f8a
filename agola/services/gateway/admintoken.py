"""The admin token when ``gateway.adminToken`` is not configured: generated once into
``<gateway dataDir>/admin-token`` (0600) and reused after, so no installation shares a known one.

The token is never logged; the log says where the file is.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from agola.config import Gateway
from agola.util.log import get_logger
from agola.util.privatefiles import generated_secret

__all__ = ["ADMIN_TOKEN_FILE", "admin_token"]

log = get_logger(__name__)

ADMIN_TOKEN_FILE = "admin-token"


def admin_token(gw: Gateway) -> str:
    """The configured admin token, else the generated one; "" (no admin) without a dataDir."""
    if gw.admin_token:
        return gw.admin_token
    if not gw.data_dir:
        log.warning("no gateway.adminToken and no gateway dataDir to keep a generated one: "
                    "the admin token is disabled")
        return ""
    path = Path(gw.data_dir) / ADMIN_TOKEN_FILE
    token, created = generated_secret(path, lambda: secrets.token_urlsafe(32))
    if created:
        log.info(f"generated the admin token into {path} (mode 0600): agola --token \"$(cat {path})\" ...")
    else:
        log.info(f"admin token: {path}")
    return token
