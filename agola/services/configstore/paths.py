"""Computed data of projects and project groups (spec §5.2): owner, path, parent path and global
visibility, from the chain of groups above an object.

A *chain* is the list of project groups from the owner's root group down to a group, inclusive.
These functions are pure: whoever holds the state (readdb, a snapshot) fetches the chain and the
owner, and asks here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs

from agola.errors import Internal
from agola.services.configstore.names import join_path, owner_path
from agola.types.configstore import (
    ConfigType,
    Organization,
    Project,
    ProjectGroup,
    ProjectGroupResponse,
    ProjectResponse,
    User,
    Visibility,
)


@attrs.frozen
class Owner:
    """The user or org at the top of a project group tree."""

    type: str  # ConfigType.USER | ConfigType.ORG
    id: str
    name: str
    # Users are always public owners; an org has its own visibility.
    visibility: str = Visibility.PUBLIC

    @property
    def path(self) -> str:
        return owner_path(self.type, self.name)

    @classmethod
    def of_user(cls, user: User) -> Owner:
        return cls(ConfigType.USER, user.id, user.name, Visibility.PUBLIC)

    @classmethod
    def of_org(cls, org: Organization) -> Owner:
        return cls(ConfigType.ORG, org.id, org.name, org.visibility or Visibility.PUBLIC)


def check_chain(owner: Owner, chain: Sequence[ProjectGroup]) -> None:
    """Internal error if ``chain`` is not a root-down chain of ``owner``'s tree (a caller bug)."""
    if not chain:
        raise Internal("empty project group chain")
    root = chain[0]
    if root.parent.type != owner.type or root.parent.id != owner.id:
        raise Internal(f"project group {root.id} is not the root group of {owner.path}")
    for parent, child in itertools.pairwise(chain):
        if child.parent.type != ConfigType.PROJECTGROUP or child.parent.id != parent.id:
            raise Internal(f"broken project group chain at {child.id}")


def chain_path(owner: Owner, chain: Sequence[ProjectGroup]) -> str:
    """Path of the last group of ``chain``: owner path, then group names (the root's is empty)."""
    path = owner.path
    for group in chain[1:]:
        path = join_path(path, group.name)
    return path


def global_visibility(owner: Owner, chain: Sequence[ProjectGroup], own: str = "") -> str:
    """Private if the object, any group above it or the owning org is private."""
    if own == Visibility.PRIVATE or owner.visibility == Visibility.PRIVATE:
        return Visibility.PRIVATE
    if any(group.visibility == Visibility.PRIVATE for group in chain):
        return Visibility.PRIVATE
    return Visibility.PUBLIC


def project_group_response(owner: Owner, chain: Sequence[ProjectGroup]) -> ProjectGroupResponse:
    """The API view of ``chain[-1]``."""
    group = chain[-1]
    path = chain_path(owner, chain)
    parent_path = chain_path(owner, chain[:-1]) if len(chain) > 1 else owner.path
    if group.is_root:
        # The reference computes the root's parent path from the owner: user/<name> itself.
        parent_path = owner.path
    return ProjectGroupResponse(
        project_group=group,
        owner_type=owner.type,
        owner_id=owner.id,
        path=path,
        parent_path=parent_path,
        global_visibility=global_visibility(owner, chain),
    )


def project_response(owner: Owner, chain: Sequence[ProjectGroup], project: Project) -> ProjectResponse:
    """The API view of ``project``, whose parent group is ``chain[-1]``."""
    parent_path = chain_path(owner, chain)
    return ProjectResponse(
        project=project,
        owner_type=owner.type,
        owner_id=owner.id,
        path=join_path(parent_path, project.name),
        parent_path=parent_path,
        global_visibility=global_visibility(owner, chain, project.visibility),
    )
