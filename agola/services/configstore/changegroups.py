"""Change group names of the configstore operations (spec §4.3, §5.4).

A change group names something whose uniqueness or freshness an operation depends on. An
operation reads the groups' revisions together with the state it checks, and its write succeeds
only if no other write touched any of them meanwhile (then it is retried on the new state, or
answers 409). Names are ``sha256hex(<prefix><value>)`` like the reference's.

Which operation takes which groups (what conflicts with what):

| operation | change groups |
|---|---|
| create user | ``username-<name>`` (+ ``remotesourceid-<rs>`` with a linked account) |
| update user (rename) | ``userid-<id>``, ``username-<old>``, ``username-<new>`` (enforced: fixes quirk §11.1.9) |
| delete user | ``userid-<id>``, ``username-<name>``, + every group/project/member removed with it |
| create/update/delete linked account, create/delete token | ``userid-<id>`` (+ ``remotesourceid-<rs>`` on create) |
| create org | ``orgname-<name>`` (+ ``userid-<creator>``) |
| delete org | ``orgid-<id>``, ``orgname-<name>``, + every group/project/member removed with it |
| add/remove org member | ``orgmember-<org>-<user>``, ``orgid-<org>``, ``userid-<user>`` |
| create project group | ``projectpath-<path>``, ``projectgroupid-<parent>`` |
| update project group | ``projectgroupid-<id>``, ``projectpath-<old path>``, ``projectpath-<new path>``, ``projectgroupid-<new parent>`` |
| delete project group | ``projectgroupid-<id>`` and ``projectid-``/``projectgroupid-`` of everything below |
| create project | ``projectpath-<path>``, ``projectgroupid-<parent>`` (+ ``userid-<la owner>``) |
| update project | ``projectid-<id>``, ``projectpath-<old path>``, ``projectpath-<new path>``, ``projectgroupid-<new parent>`` |
| delete project | ``projectid-<id>`` |
| create/update/delete remote source | ``remotesourcename-<name>``, ``remotesourceid-<id>`` |
| create/update/delete secret | ``secretname-<parent>-<name>``, ``secretid-<id>``, ``<parent type>id-<parent>`` |
| create/update/delete variable | ``variablename-<parent>-<name>``, ``variableid-<id>``, ``<parent type>id-<parent>`` |

Creating something under a parent takes the parent's id group, and deleting the parent takes the
id groups of everything it removes: a concurrent create under a parent being deleted (or moved)
then fails instead of leaving an orphan. The price is that concurrent creates under one parent
conflict; the operations retry those automatically.
"""

from __future__ import annotations

import hashlib

from agola.types.configstore import ConfigType


def _cg(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def user_name(name: str) -> str:
    return _cg("username-" + name)


def user_id(id: str) -> str:
    return _cg("userid-" + id)


def org_name(name: str) -> str:
    return _cg("orgname-" + name)


def org_id(id: str) -> str:
    return _cg("orgid-" + id)


def org_member(org_id: str, user_id: str) -> str:
    return _cg(f"orgmember-{org_id}-{user_id}")


def project_path(path: str) -> str:
    # One prefix for groups and projects: a path names either.
    return _cg("projectpath-" + path)


def project_group_id(id: str) -> str:
    return _cg("projectgroupid-" + id)


def project_id(id: str) -> str:
    return _cg("projectid-" + id)


def parent_id(parent_type: str, id: str) -> str:
    return project_id(id) if parent_type == ConfigType.PROJECT else project_group_id(id)


def remote_source_name(name: str) -> str:
    return _cg("remotesourcename-" + name)


def remote_source_id(id: str) -> str:
    return _cg("remotesourceid-" + id)


def secret_name(parent_id: str, name: str) -> str:
    return _cg(f"secretname-{parent_id}-{name}")


def secret_id(id: str) -> str:
    return _cg("secretid-" + id)


def variable_name(parent_id: str, name: str) -> str:
    return _cg(f"variablename-{parent_id}-{name}")


def variable_id(id: str) -> str:
    return _cg("variableid-" + id)
