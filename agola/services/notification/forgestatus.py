"""Commit statuses on the forge of a project (spec §6.10): the project's remote source, its linked
account and ``agola.forges.driver_for``.

The notification logic only needs ``CommitStatuses`` (a project's name, and setting one status);
tests give it a fake recording the calls.
"""

from __future__ import annotations

from typing import Protocol

from agola.forges import CommitState, OAuth2Token, driver_for
from agola.roleclients.configstore import ConfigstoreAPI, token_refused_marker
from agola.types.configstore import UpdateUserLARequest
from agola.types.notification import CommitStatusMessage
from agola.util.log import get_logger

log = get_logger(__name__)


class CommitStatuses(Protocol):
    async def project_name(self, project_id: str) -> str:
        """The project's name (``NotExist`` when it is gone)."""
        ...

    async def set_status(self, msg: CommitStatusMessage) -> None:
        """Set the status on the project's repository; a ``ForgeError`` (or ``Unavailable``) when
        the forge or the configstore fails: the delivery is tried again later."""
        ...


class ForgeCommitStatuses:
    """Through the configstore and the project's forge, as the project's linked account."""

    def __init__(self, configstore: ConfigstoreAPI) -> None:
        self.cs = configstore

    async def project_name(self, project_id: str) -> str:
        return (await self.cs.get_project(project_id)).project.name

    async def set_status(self, msg: CommitStatusMessage) -> None:
        project = (await self.cs.get_project(msg.project_id)).project
        rs = await self.cs.get_remote_source(project.remote_source_id)
        user = await self.cs.get_user_by_linked_account(project.linked_account_id)
        la = user.linked_accounts.get(project.linked_account_id)

        async def save(token: OAuth2Token) -> None:
            # The refreshed token replaces the old one on the linked account (the old refresh
            # token may be invalid from now on).
            assert la is not None
            await self.cs.update_user_la(user.id, la.id, UpdateUserLARequest(
                remote_user_id=la.remote_user_id, remote_user_name=la.remote_user_name,
                user_access_token=la.user_access_token, oauth2_access_token=token.access_token,
                oauth2_refresh_token=token.refresh_token, oauth2_access_token_expires_at=token.expires_at))

        driver = driver_for(rs, la, on_token_refresh=save,
                            on_token_refused=token_refused_marker(self.cs, user.id, la) if la is not None else None)
        try:
            await driver.set_commit_status(project.repository_path, msg.commit_sha, state=CommitState(msg.state),
                                           context=msg.context, description=msg.description,
                                           target_url=msg.target_url)
        finally:
            await driver.close()
