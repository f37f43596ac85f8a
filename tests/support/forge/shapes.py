"""The JSON shapes the Gitea emulator answers and sends, field for field as Gitea's
(``modules/structs``; checked against the reference pack in tests/forges/test_emulator.py)."""

from __future__ import annotations

from typing import Any

from tests.support.forge.model import Forge, Hook, Key, PullRequest, Repo, Status, User

ZERO_TIME = "0001-01-01T00:00:00Z"
CREATED = "2026-01-01T00:00:00Z"


def user(forge: Forge, u: User) -> dict[str, Any]:
    return {
        "id": u.id, "login": u.login, "login_name": "", "full_name": u.full_name, "email": u.email,
        "avatar_url": f"{forge.url}/avatars/{u.id}", "html_url": f"{forge.url}/{u.login}", "language": "en-US",
        "is_admin": False, "last_login": ZERO_TIME, "created": CREATED, "restricted": False, "active": True,
        "prohibit_login": False, "location": "", "website": "", "description": "", "visibility": "public",
        "followers_count": 0, "following_count": 0, "starred_repos_count": 0, "username": u.login,
    }


def repo(forge: Forge, r: Repo, viewer: User | None = None) -> dict[str, Any]:
    owner = forge.users[r.owner]
    admin = viewer is not None and viewer.login == r.owner
    parent = repo(forge, forge.repos[r.fork_of]) if r.fork_of else None
    html = f"{forge.url}/{r.path}"
    return {
        "id": r.id, "owner": user(forge, owner), "name": r.name, "full_name": r.path, "description": "",
        "empty": False, "private": False, "fork": r.fork_of is not None, "template": False, "parent": parent,
        "mirror": False, "size": 1, "language": "", "languages_url": f"{forge.url}/api/v1/repos/{r.path}/languages",
        "html_url": html, "url": f"{forge.url}/api/v1/repos/{r.path}", "link": "",
        "ssh_url": forge.ssh_url(r.path), "clone_url": f"{html}.git", "original_url": "", "website": "",
        "stars_count": 0, "forks_count": 0, "watchers_count": 1, "open_issues_count": 0,
        "open_pr_counter": len([p for p in r.pulls.values() if p.state == "open"]), "release_counter": 0,
        "default_branch": r.default_branch, "archived": False, "created_at": CREATED, "updated_at": CREATED,
        "archived_at": "1970-01-01T00:00:00Z",
        "permissions": {"admin": admin, "push": admin, "pull": True},
        "has_issues": True, "internal_tracker": {"enable_time_tracker": True,
                                                 "allow_only_contributors_to_track_time": True,
                                                 "enable_issue_dependencies": True},
        "has_wiki": True, "has_pull_requests": True, "has_projects": True, "has_releases": True,
        "has_packages": True, "has_actions": True, "ignore_whitespace_conflicts": False,
        "allow_merge_commits": True, "allow_rebase": True, "allow_rebase_explicit": True,
        "allow_squash_merge": True, "allow_rebase_update": True, "default_delete_branch_after_merge": False,
        "default_merge_style": "merge", "default_allow_maintainer_edit": False, "avatar_url": "",
        "internal": False, "mirror_interval": "", "object_format_name": "sha1", "mirror_updated": ZERO_TIME,
        "repo_transfer": None, "topics": None, "licenses": None,
    }


def key(forge: Forge, r: Repo, k: Key) -> dict[str, Any]:
    return {
        "id": k.id, "key_id": k.id, "key": k.key, "url": f"{forge.url}/api/v1/repos/{r.path}/keys/{k.id}",
        "title": k.title, "fingerprint": k.fingerprint, "created_at": CREATED, "read_only": k.read_only,
    }


def hook(h: Hook) -> dict[str, Any]:
    # The secret is never answered, as Gitea.
    return {
        "id": h.id, "type": h.type, "branch_filter": h.branch_filter,
        "config": {"content_type": h.content_type, "url": h.url}, "events": list(h.events),
        "authorization_header": "", "active": h.active, "updated_at": CREATED, "created_at": CREATED,
    }


def status(forge: Forge, r: Repo, s: Status) -> dict[str, Any]:
    return {
        "id": s.id, "status": s.state, "target_url": s.target_url, "description": s.description,
        "url": f"{forge.url}/api/v1/repos/{r.path}/statuses/{s.sha}", "context": s.context,
        "creator": user(forge, forge.users[s.creator]), "created_at": CREATED, "updated_at": CREATED,
    }


def error(forge: Forge, message: str, status_code: int) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "url": f"{forge.url}/api/swagger"}
    if status_code == 404:
        body["errors"] = None
    return body


def payload_commit(forge: Forge, r: Repo, c: dict[str, Any]) -> dict[str, Any]:
    sig = {"name": c["author_name"], "email": c["author_email"], "username": ""}
    return {
        "id": c["sha"], "message": c["message"], "url": f"{forge.url}/{r.path}/commit/{c['sha']}",
        "author": sig, "committer": dict(sig), "verification": None, "timestamp": c["date"],
        "added": [], "removed": [], "modified": [],
    }


def push_payload(forge: Forge, r: Repo, ref: str, before: str, after: str, commits: list[dict[str, Any]],
                 head: dict[str, Any] | None, pusher: User) -> dict[str, Any]:
    # Gitea lists the pushed commits newest first.
    return {
        "ref": ref, "before": before, "after": after,
        "compare_url": f"{forge.url}/{r.path}/compare/{before}...{after}",
        "commits": [payload_commit(forge, r, c) for c in commits], "total_commits": len(commits),
        "head_commit": payload_commit(forge, r, head) if head else None,
        "repository": repo(forge, r), "pusher": user(forge, pusher), "sender": user(forge, pusher),
    }


def branch_info(forge: Forge, r: Repo, branch: str, sha: str) -> dict[str, Any]:
    return {"label": branch, "ref": branch, "sha": sha, "repo_id": r.id, "repo": repo(forge, r)}


def pull_request(forge: Forge, base: Repo, pr: PullRequest) -> dict[str, Any]:
    head_repo = forge.repos[pr.head_repo]
    html = f"{forge.url}/{base.path}/pulls/{pr.number}"
    return {
        "id": pr.id, "url": html, "number": pr.number, "user": user(forge, forge.users[pr.author]),
        "title": pr.title, "body": "", "labels": [], "milestone": None, "assignee": None, "assignees": None,
        "state": pr.state, "is_locked": False, "comments": 0, "html_url": html, "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch", "mergeable": True, "merged": False, "merged_at": None,
        "merge_commit_sha": None, "merged_by": None,
        "base": branch_info(forge, base, pr.base_branch, pr.base_sha),
        "head": branch_info(forge, head_repo, pr.head_branch, pr.head_sha),
        "merge_base": pr.base_sha, "due_date": None, "created_at": CREATED, "updated_at": CREATED,
        "closed_at": None,
    }


def pull_request_payload(forge: Forge, base: Repo, pr: PullRequest, action: str) -> dict[str, Any]:
    return {
        "action": action, "number": pr.number, "pull_request": pull_request(forge, base, pr),
        "repository": repo(forge, base), "sender": user(forge, forge.users[pr.author]), "review": None,
    }
