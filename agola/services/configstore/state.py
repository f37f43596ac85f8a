"""An in-memory, indexed view of every configstore object, with the queries the operations need.

``ConfigState`` is fed the datamanager's puts and deletes (``apply``) and answers lookups by id,
name, ref and path, tree walks (chains, subtrees), computed paths and the secrets/variables tree.
Everything is synchronous and pure: an operation reads a consistent state without awaiting, which
is what makes its checks and its change-group token agree (spec §5.4 step 1).

Objects are frozen attrs instances, so they are shared, never copied.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from agola.errors import BadRequest, Internal
from agola.services.configstore.names import (
    ObjectPath,
    join_path,
    parse_name_ref,
    parse_path_ref,
)
from agola.services.configstore.paths import (
    Owner,
    chain_path,
    project_group_response,
    project_response,
)
from agola.services.configstore.tokens import hash_token, user_token_name
from agola.types.configstore import (
    DATATYPES,
    ConfigType,
    Organization,
    OrganizationMember,
    Parent,
    Project,
    ProjectGroup,
    ProjectGroupResponse,
    ProjectResponse,
    RemoteSource,
    Secret,
    SecretResponse,
    User,
    Variable,
    VariableResponse,
)

# A project group tree deeper than this is corrupt (a cycle); real trees are far shallower.
MAX_DEPTH = 1000

StoredObject = User | Organization | OrganizationMember | ProjectGroup | Project | RemoteSource | Secret | Variable


def datatype_of(obj: StoredObject) -> str:
    for datatype, cls in DATATYPES.items():
        if type(obj) is cls:
            return datatype
    raise Internal(f"not a configstore object: {type(obj).__name__}")


class ConfigState:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {dt: {} for dt in DATATYPES}
        # indexes
        self._user_by_name: dict[str, str] = {}
        self._user_by_token: dict[str, str] = {}  # token hash -> user id
        self._user_by_la: dict[str, str] = {}  # linked account id -> user id
        self._user_by_remote: dict[tuple[str, str], str] = {}  # (remote source id, remote user id)
        self._org_by_name: dict[str, str] = {}
        self._rs_by_name: dict[str, str] = {}
        self._members_by_org: dict[str, set[str]] = defaultdict(set)
        self._members_by_user: dict[str, set[str]] = defaultdict(set)
        self._children: dict[str, dict[str, set[str]]] = {
            dt: defaultdict(set)
            for dt in (ConfigType.PROJECTGROUP, ConfigType.PROJECT, ConfigType.SECRET, ConfigType.VARIABLE)
        }

    # ------------------------------------------------------------------------------------------
    # feeding

    def apply(self, datatype: str, id: str, data: bytes | dict[str, Any] | None) -> None:
        """Apply a datamanager action: a put (``data`` = the JSON object) or a delete (None)."""
        if datatype not in DATATYPES:
            raise Internal(f"unknown configstore datatype {datatype!r}")
        if data is None:
            self.delete(datatype, id)
            return
        if isinstance(data, (bytes, bytearray)):
            data = json.loads(data)
        obj = DATATYPES[datatype].from_json(data)
        if getattr(obj, "id", id) != id:
            obj = _with_id(obj, id)
        self.put(obj)  # type: ignore[arg-type]  # DATATYPES holds only the StoredObject classes

    def put(self, obj: StoredObject) -> None:
        datatype = datatype_of(obj)
        self.delete(datatype, obj.id)
        self._objects[datatype][obj.id] = obj
        self._index(datatype, obj, add=True)

    def delete(self, datatype: str, id: str) -> None:
        old = self._objects[datatype].pop(id, None)
        if old is not None:
            self._index(datatype, old, add=False)

    def clear(self) -> None:
        self._reset()

    def _index(self, datatype: str, obj: Any, *, add: bool) -> None:
        def setidx(index: dict[Any, str], key: Any) -> None:
            if add:
                index[key] = obj.id
            elif index.get(key) == obj.id:
                del index[key]

        if datatype == ConfigType.USER:
            setidx(self._user_by_name, obj.name)
            for token_hash in obj.tokens.values():
                setidx(self._user_by_token, token_hash)
            for la in obj.linked_accounts.values():
                setidx(self._user_by_la, la.id)
                setidx(self._user_by_remote, (la.remote_source_id, la.remote_user_id))
        elif datatype == ConfigType.ORG:
            setidx(self._org_by_name, obj.name)
        elif datatype == ConfigType.REMOTESOURCE:
            setidx(self._rs_by_name, obj.name)
        elif datatype == ConfigType.ORGMEMBER:
            for index, key in ((self._members_by_org, obj.organization_id), (self._members_by_user, obj.user_id)):
                if add:
                    index[key].add(obj.id)
                else:
                    index[key].discard(obj.id)
        else:
            children = self._children[datatype][obj.parent.id]
            if add:
                children.add(obj.id)
            else:
                children.discard(obj.id)

    # ------------------------------------------------------------------------------------------
    # plain access

    def get(self, datatype: str, id: str) -> Any:
        return self._objects[datatype].get(id)

    def all(self, datatype: str) -> Iterator[Any]:
        return iter(self._objects[datatype].values())

    def count(self, datatype: str) -> int:
        return len(self._objects[datatype])

    # ------------------------------------------------------------------------------------------
    # users

    def user(self, id: str) -> User | None:
        return self._objects[ConfigType.USER].get(id)

    def user_by_name(self, name: str) -> User | None:
        uid = self._user_by_name.get(name)
        return self.user(uid) if uid else None

    def user_by_ref(self, ref: str) -> User | None:
        parsed = parse_name_ref(ref)
        return self.user(parsed.value) if parsed.is_id else self.user_by_name(parsed.value)

    def user_by_token(self, token: str) -> User | None:
        """The user owning API token ``token``: found by its hash, confirmed in constant time."""
        uid = self._user_by_token.get(hash_token(token))
        user = self.user(uid) if uid else None
        if user is None or user_token_name(user, token) is None:
            return None
        return user

    def user_by_linked_account(self, la_id: str) -> User | None:
        uid = self._user_by_la.get(la_id)
        return self.user(uid) if uid else None

    def user_by_remote_user(self, remote_source_id: str, remote_user_id: str) -> User | None:
        uid = self._user_by_remote.get((remote_source_id, remote_user_id))
        return self.user(uid) if uid else None

    def users(self, start: str = "", limit: int = 0, asc: bool = True) -> list[User]:
        return _page(self._objects[ConfigType.USER].values(), start, limit, asc)

    # ------------------------------------------------------------------------------------------
    # orgs and members

    def org(self, id: str) -> Organization | None:
        return self._objects[ConfigType.ORG].get(id)

    def org_by_name(self, name: str) -> Organization | None:
        oid = self._org_by_name.get(name)
        return self.org(oid) if oid else None

    def org_by_ref(self, ref: str) -> Organization | None:
        parsed = parse_name_ref(ref)
        return self.org(parsed.value) if parsed.is_id else self.org_by_name(parsed.value)

    def orgs(self, start: str = "", limit: int = 0, asc: bool = True) -> list[Organization]:
        return _page(self._objects[ConfigType.ORG].values(), start, limit, asc)

    def org_member(self, org_id: str, user_id: str) -> OrganizationMember | None:
        for mid in self._members_by_org.get(org_id, ()):
            member = self._objects[ConfigType.ORGMEMBER][mid]
            if member.user_id == user_id:
                return member
        return None

    def org_members(self, org_id: str) -> list[OrganizationMember]:
        members = [self._objects[ConfigType.ORGMEMBER][m] for m in self._members_by_org.get(org_id, ())]
        return sorted(members, key=lambda m: m.id)

    def user_memberships(self, user_id: str) -> list[OrganizationMember]:
        members = [self._objects[ConfigType.ORGMEMBER][m] for m in self._members_by_user.get(user_id, ())]
        return sorted(members, key=lambda m: m.id)

    # ------------------------------------------------------------------------------------------
    # remote sources

    def remote_source(self, id: str) -> RemoteSource | None:
        return self._objects[ConfigType.REMOTESOURCE].get(id)

    def remote_source_by_name(self, name: str) -> RemoteSource | None:
        rid = self._rs_by_name.get(name)
        return self.remote_source(rid) if rid else None

    def remote_source_by_ref(self, ref: str) -> RemoteSource | None:
        parsed = parse_name_ref(ref)
        return self.remote_source(parsed.value) if parsed.is_id else self.remote_source_by_name(parsed.value)

    def remote_sources(self, start: str = "", limit: int = 0, asc: bool = True) -> list[RemoteSource]:
        return _page(self._objects[ConfigType.REMOTESOURCE].values(), start, limit, asc)

    def linked_accounts_of_remote_source(self, rs_id: str) -> list[tuple[User, str]]:
        """(user, linked account id) pairs using remote source ``rs_id``."""
        out = []
        for user in self._objects[ConfigType.USER].values():
            for la in user.linked_accounts.values():
                if la.remote_source_id == rs_id:
                    out.append((user, la.id))
        return out

    def projects_using_remote_source(self, rs_id: str) -> list[Project]:
        return [p for p in self._objects[ConfigType.PROJECT].values() if p.remote_source_id == rs_id]

    def projects_using_linked_accounts(self, la_ids: Iterable[str]) -> list[Project]:
        ids = set(la_ids)
        return [p for p in self._objects[ConfigType.PROJECT].values() if p.linked_account_id in ids]

    # ------------------------------------------------------------------------------------------
    # project groups and projects

    def project_group(self, id: str) -> ProjectGroup | None:
        return self._objects[ConfigType.PROJECTGROUP].get(id)

    def project(self, id: str) -> Project | None:
        return self._objects[ConfigType.PROJECT].get(id)

    def owner(self, owner_type: str, owner_id: str) -> Owner | None:
        if owner_type == ConfigType.USER:
            user = self.user(owner_id)
            return Owner.of_user(user) if user else None
        if owner_type == ConfigType.ORG:
            org = self.org(owner_id)
            return Owner.of_org(org) if org else None
        return None

    def owner_by_name(self, owner_type: str, name: str) -> Owner | None:
        if owner_type == ConfigType.USER:
            user = self.user_by_name(name)
            return Owner.of_user(user) if user else None
        org = self.org_by_name(name)
        return Owner.of_org(org) if org else None

    def root_group(self, owner_type: str, owner_id: str) -> ProjectGroup | None:
        for gid in self._children[ConfigType.PROJECTGROUP].get(owner_id, ()):
            group = self.project_group(gid)
            if group is not None and group.parent.type == owner_type:
                return group
        return None

    def subgroups(self, group_id: str) -> list[ProjectGroup]:
        ids = self._children[ConfigType.PROJECTGROUP].get(group_id, ())
        return sorted((self._objects[ConfigType.PROJECTGROUP][i] for i in ids), key=lambda g: g.name)

    def projects_in(self, group_id: str) -> list[Project]:
        ids = self._children[ConfigType.PROJECT].get(group_id, ())
        return sorted((self._objects[ConfigType.PROJECT][i] for i in ids), key=lambda p: p.name)

    def subgroup_by_name(self, parent_id: str, name: str) -> ProjectGroup | None:
        for group in self.subgroups(parent_id):
            if group.name == name and group.parent.type == ConfigType.PROJECTGROUP:
                return group
        return None

    def project_by_name(self, parent_id: str, name: str) -> Project | None:
        for project in self.projects_in(parent_id):
            if project.name == name:
                return project
        return None

    def group_by_path(self, path: ObjectPath) -> ProjectGroup | None:
        owner = self.owner_by_name(path.owner_type, path.owner_name)
        if owner is None:
            return None
        group = self.root_group(owner.type, owner.id)
        for name in path.names:
            if group is None:
                return None
            group = self.subgroup_by_name(group.id, name)
        return group

    def project_group_by_ref(self, ref: str) -> ProjectGroup | None:
        parsed = parse_path_ref(ref)
        if parsed.path is not None:
            return self.group_by_path(parsed.path)
        return self.project_group(parsed.id)

    def project_by_ref(self, ref: str) -> Project | None:
        parsed = parse_path_ref(ref)
        if parsed.path is None:
            return self.project(parsed.id)
        if parsed.path.is_root:
            return None
        parent = self.group_by_path(parsed.path.parent)
        return self.project_by_name(parent.id, parsed.path.last_name) if parent else None

    def chain(self, group_id: str) -> list[ProjectGroup]:
        """The groups from the owner's root group down to ``group_id`` (inclusive)."""
        chain: list[ProjectGroup] = []
        gid = group_id
        for _ in range(MAX_DEPTH):
            group = self.project_group(gid)
            if group is None:
                raise Internal(f"project group {gid!r} of a chain doesn't exist")
            chain.append(group)
            if group.is_root:
                chain.reverse()
                return chain
            if group.parent.type != ConfigType.PROJECTGROUP:
                raise Internal(f"project group {gid!r} has a wrong parent type {group.parent.type!r}")
            gid = group.parent.id
        raise Internal(f"project group tree above {group_id!r} is too deep (a cycle?)")

    def chain_owner(self, chain: list[ProjectGroup]) -> Owner:
        root = chain[0]
        owner = self.owner(root.parent.type, root.parent.id)
        if owner is None:
            raise Internal(f"owner {root.parent.type}/{root.parent.id} of root project group {root.id} doesn't exist")
        return owner

    def group_path(self, group_id: str) -> str:
        chain = self.chain(group_id)
        return chain_path(self.chain_owner(chain), chain)

    def project_path(self, project: Project) -> str:
        return join_path(self.group_path(project.parent.id), project.name)

    def is_descendant_or_self(self, group_id: str, ancestor_id: str) -> bool:
        return any(g.id == ancestor_id for g in self.chain(group_id))

    def project_group_response(self, group: ProjectGroup) -> ProjectGroupResponse:
        chain = self.chain(group.id)
        return project_group_response(self.chain_owner(chain), chain)

    def project_response(self, project: Project) -> ProjectResponse:
        chain = self.chain(project.parent.id)
        return project_response(self.chain_owner(chain), chain, project)

    def subtree(self, group_id: str) -> tuple[list[ProjectGroup], list[Project]]:
        """Every group (``group_id`` first, parents before children) and project below a group."""
        groups: list[ProjectGroup] = []
        projects: list[Project] = []
        todo = [group_id]
        while todo:
            gid = todo.pop(0)
            group = self.project_group(gid)
            if group is None:
                continue
            groups.append(group)
            projects.extend(self.projects_in(gid))
            todo.extend(g.id for g in self.subgroups(gid))
            if len(groups) > MAX_DEPTH * 100:
                raise Internal("project group subtree too large (a cycle?)")
        return groups, projects

    # ------------------------------------------------------------------------------------------
    # secrets and variables

    def parent_path(self, parent: Parent) -> str:
        if parent.type == ConfigType.PROJECT:
            project = self.project(parent.id)
            if project is None:
                raise Internal(f"project {parent.id!r} doesn't exist")
            return self.project_path(project)
        if parent.type == ConfigType.PROJECTGROUP:
            return self.group_path(parent.id)
        raise Internal(f"wrong parent type {parent.type!r}")

    def secrets(self, parent_id: str) -> list[Secret]:
        ids = self._children[ConfigType.SECRET].get(parent_id, ())
        return sorted((self._objects[ConfigType.SECRET][i] for i in ids), key=lambda s: s.name)

    def variables(self, parent_id: str) -> list[Variable]:
        ids = self._children[ConfigType.VARIABLE].get(parent_id, ())
        return sorted((self._objects[ConfigType.VARIABLE][i] for i in ids), key=lambda v: v.name)

    def secret_by_name(self, parent_id: str, name: str) -> Secret | None:
        return next((s for s in self.secrets(parent_id) if s.name == name), None)

    def variable_by_name(self, parent_id: str, name: str) -> Variable | None:
        return next((v for v in self.variables(parent_id) if v.name == name), None)

    def _levels(self, parent: Parent, tree: bool) -> list[tuple[str, str]]:
        """(parent id, parent path) of ``parent`` and, with ``tree``, of every group above it,
        nearest first. Paths are built along one chain walk."""
        project: Project | None = None
        if parent.type == ConfigType.PROJECT:
            project = self.project(parent.id)
            if project is None:
                raise Internal(f"project {parent.id!r} doesn't exist")
            chain = self.chain(project.parent.id)
        elif parent.type == ConfigType.PROJECTGROUP:
            chain = self.chain(parent.id)
        else:
            raise BadRequest(f"wrong parent type {parent.type!r}")
        path = self.chain_owner(chain).path
        levels: list[tuple[str, str]] = [(chain[0].id, path)]
        for group in chain[1:]:
            path = join_path(path, group.name)
            levels.append((group.id, path))
        if project is not None:
            levels.append((project.id, join_path(path, project.name)))
        levels.reverse()
        return levels if tree else levels[:1]

    def secrets_tree(self, parent: Parent, tree: bool = True) -> list[SecretResponse]:
        """The secrets of ``parent`` (and with ``tree`` of every group above it, nearest first)."""
        return [SecretResponse(s, path) for pid, path in self._levels(parent, tree) for s in self.secrets(pid)]

    def variables_tree(self, parent: Parent, tree: bool = True) -> list[VariableResponse]:
        return [VariableResponse(v, path) for pid, path in self._levels(parent, tree) for v in self.variables(pid)]


def _with_id(obj: Any, id: str) -> Any:
    return attrs.evolve(obj, id=id)


def _page(objs: Iterable[Any], start: str, limit: int, asc: bool) -> list[Any]:
    """Objects sorted by name; ``start`` is exclusive; ``limit`` 0 = all."""
    items = sorted(objs, key=lambda o: o.name, reverse=not asc)
    if start:
        items = [o for o in items if (o.name > start if asc else o.name < start)]
    return items[:limit] if limit else items
