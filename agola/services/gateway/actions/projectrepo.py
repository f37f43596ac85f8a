"""A project's repository on its forge (spec §6.4): the SSH key pair whose public half is the
project's read-only deploy key, and the webhook ``<apiExposedURL>/webhooks?projectid=<id>``
signed with the project's webhook secret.

Setup is all or nothing: when a step fails, what was installed is removed again (best effort,
logged) and the caller deletes the project, so no project is left without its hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agola.errors import AgolaError, BadRequest, NotExist
from agola.forges import ForgeDriver
from agola.services.gateway.actions import Services
from agola.services.gateway.actions.linkedaccounts import account_driver
from agola.types.configstore import LinkedAccount, Project, RemoteSource, User
from agola.util.log import get_logger

log = get_logger(__name__)


def generate_ssh_key() -> str:
    """A new private key (OpenSSH PEM). Ed25519: what OpenSSH and every forge accept, generated
    at once (the reference made 4096-bit RSA keys)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()


def public_key(private_pem: str, comment: str = "") -> str:
    """The OpenSSH public key line of a private key."""
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def deploy_key_title(project_id: str) -> str:
    return f"agola deploy key - {project_id}"


def webhook_url(svc: Services, project_id: str) -> str:
    return f"{svc.api_exposed_url.rstrip('/')}/webhooks?{urlencode({'projectid': project_id})}"


async def project_account(svc: Services, project: Project,
                          rs: RemoteSource | None = None) -> tuple[RemoteSource, User, LinkedAccount]:
    """The remote source (read unless given), user and linked account a project's forge calls are made with."""
    if rs is None:
        rs = await svc.configstore.get_remote_source(project.remote_source_id)
    user: User = await svc.configstore.get_user_by_linked_account(project.linked_account_id)
    la = user.linked_accounts.get(project.linked_account_id)
    if la is None:
        raise NotExist(f"linked account {project.linked_account_id!r} of the project doesn't exist")
    return rs, user, la


async def project_driver(svc: Services, project: Project) -> tuple[RemoteSource, ForgeDriver]:
    rs, user, la = await project_account(svc, project)
    return rs, await account_driver(svc, rs, user.id, la)


async def setup_repo(svc: Services, forge: ForgeDriver, project: Project) -> None:
    """Install (or reinstall) the deploy key and the webhook; on failure nothing stays installed."""
    if not project.webhook_secret:
        raise BadRequest("the project has no webhook secret")
    title = deploy_key_title(project.id)
    try:
        await forge.create_deploy_key(project.repository_path, title, public_key(project.ssh_private_key, title))
        await forge.create_webhook(project.repository_path, webhook_url(svc, project.id), project.webhook_secret)
    except AgolaError:
        await cleanup_repo(svc, forge, project)
        raise
    log.info("project repository set up", project=project.id, repo=project.repository_path)


async def cleanup_repo(svc: Services, forge: ForgeDriver, project: Project) -> list[str]:
    """Remove the deploy key and the webhook, best effort: returns what could not be removed."""
    left: list[str] = []
    path = project.repository_path
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("webhook", lambda: forge.delete_webhook(path, webhook_url(svc, project.id))),
        ("deploy key", lambda: forge.delete_deploy_key(path, deploy_key_title(project.id))),
    ]
    for what, step in steps:
        try:
            await step()
        except AgolaError as exc:
            left.append(what)
            log.warning("project repository cleanup failed", project=project.id, repo=project.repository_path,
                        what=what, error=exc.message)
    return left
