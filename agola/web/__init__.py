"""The web UI, served by the gateway at ``/`` beside ``/api/v1alpha`` (same origin).

Server-rendered Jinja2 pages (``templates/``), one stylesheet and one small script (``static/``),
no build step. The pages call the gateway's actions as the signed-in user, so every permission
check is the API's. See ``docs/web.md``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from agola.config import Gateway
from agola.web import accounts, projects, signin, views
from agola.web.handlers import COOKIE_POLICY_KEY, SESSIONS_KEY, CookiePolicy
from agola.web.sessions import SessionStore, cookie_key, sessions_dir

__all__ = ["STATIC_DIR", "add_web_ui"]

STATIC_DIR = Path(__file__).parent / "static"


def add_web_ui(app: web.Application, gw: Gateway) -> None:
    """Routes the UI's pages, its script endpoints and its static files on the gateway's app."""
    app[SESSIONS_KEY] = SessionStore(cookie_key(gw), gw.cookie_signing.duration, directory=sessions_dir(gw))
    app[COOKIE_POLICY_KEY] = CookiePolicy(
        secure=gw.web.tls or urlsplit(gw.web_exposed_url).scheme == "https", unsecure=gw.unsecure_cookies)
    for module in (signin, views, accounts, projects):
        module.add_routes(app)
    app.router.add_static("/static", STATIC_DIR)
