"""``POST /user/createrun``: the direct run of a commit the CLI pushed to the git proxy (spec §6.8).

The repository is ``<userID>/<repoUUID>`` on the gitserver, only the caller's own; the ref decides
the run group (branch, tag, or pull request via the given ref regexes); the runs' cache group is
the user plus the repository uuid (two local repositories never share caches).
"""

from __future__ import annotations

from typing import Any

import attrs

from agola.errors import BadRequest
from agola.roleclients.gitserver import GitserverClient
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import deny, require_user
from agola.services.gateway.runcreation import RunSource, create_runs
from agola.types.runservice import Run, RunCreateRequest
from agola.types.when import RefType
from agola.util.userregex import UserRegex, UserRegexError, compile_user_regex

DEFAULT_PR_REGEXES = (r"refs/pull/(\d+)/head", r"refs/merge-requests/(\d+)/head")


@attrs.frozen
class UserCreateRunRequest:
    repo_uuid: str = ""
    repo_path: str = ""
    branch: str = ""
    tag: str = ""
    ref: str = ""
    commit_sha: str = ""
    message: str = ""
    pull_request_ref_regexes: tuple[str, ...] = ()
    variables: dict[str, str] = attrs.field(factory=dict, repr=False)
    # Variables whose values are written as *** in the run's logs (the CLI's --secret).
    secret_variables: dict[str, str] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: Any) -> UserCreateRunRequest:
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        strs = {k: body.get(k) or "" for k in ("repo_uuid", "repo_path", "branch", "tag", "ref", "commit_sha", "message")}
        for key, value in strs.items():
            if not isinstance(value, str):
                raise BadRequest(f"{key}: expected a string")
        regexes = body.get("pull_request_ref_regexes") or []
        if not isinstance(regexes, list) or not all(isinstance(r, str) for r in regexes):
            raise BadRequest("pull_request_ref_regexes: expected a list of strings")
        variables, secrets = (_string_map(body, key) for key in ("variables", "secret_variables"))
        both = sorted(variables.keys() & secrets.keys())
        if both:
            raise BadRequest(f"variables and secret_variables both set {', '.join(both)}")
        return cls(**strs, pull_request_ref_regexes=tuple(regexes), variables=variables, secret_variables=secrets)


def _string_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"{key}: expected an object of strings")
    return dict(value)


@attrs.frozen
class ResolvedRef:
    ref_type: str
    ref: str
    branch: str = ""
    tag: str = ""
    pull_request_id: str = ""


def resolve_ref(req: UserCreateRunRequest) -> ResolvedRef:
    given = [x for x in (req.branch, req.tag, req.ref) if x]
    if not given:
        raise BadRequest("one of branch, tag or ref is required")
    if len(given) > 1:
        raise BadRequest("only one of branch, tag or ref can be provided")
    if req.branch:
        return ResolvedRef(RefType.BRANCH, f"refs/heads/{req.branch}", branch=req.branch)
    if req.tag:
        return ResolvedRef(RefType.TAG, f"refs/tags/{req.tag}", tag=req.tag)
    ref = req.ref
    if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return ResolvedRef(RefType.BRANCH, ref, branch=ref[len("refs/heads/"):])
    if ref.startswith("refs/tags/") and len(ref) > len("refs/tags/"):
        return ResolvedRef(RefType.TAG, ref, tag=ref[len("refs/tags/"):])
    for pattern in req.pull_request_ref_regexes or DEFAULT_PR_REGEXES:
        m = _pull_request_regexp(pattern).match(ref)
        pull_request_id = m.group(1) if m and m.groups() else None
        if pull_request_id:
            return ResolvedRef(RefType.PULL_REQUEST, ref, pull_request_id=pull_request_id)
    raise BadRequest(f"ref {ref!r} is not a branch, a tag or a pull request ref")


def _pull_request_regexp(pattern: str) -> UserRegex:
    """A user's pull request ref regexp, with RE2 (linear matching whatever the pattern)."""
    try:
        return compile_user_regex(pattern)
    except UserRegexError as exc:
        raise BadRequest(f"wrong pull request ref regexp {pattern!r}: {exc}") from None


def _check_regexes(patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        _pull_request_regexp(pattern)


async def user_create_run(svc: Services, ident: Identity, req: UserCreateRunRequest) -> list[Run]:
    require_user(ident)
    if ident.user is None:
        raise BadRequest("direct runs need a user: the admin token has none")
    _check_regexes(req.pull_request_ref_regexes)
    if not req.repo_uuid:
        raise BadRequest("empty repo uuid")
    parts = req.repo_path.split("/")
    if len(parts) != 2 or not all(parts):
        raise BadRequest(f"wrong repo path {req.repo_path!r} (expected <user id>/<repo uuid>)")
    if parts[0] != ident.user.id:
        raise deny(ident, "create runs in another user's repository")
    if not req.commit_sha:
        raise BadRequest("empty commit sha")
    ref = resolve_ref(req)
    src = RunSource(
        run_type="user",
        base_id=ident.user.id,
        ref_type=ref.ref_type,
        ref=ref.ref,
        branch=ref.branch,
        tag=ref.tag,
        pull_request_id=ref.pull_request_id,
        commit_sha=req.commit_sha,
        message=req.message or "agola direct run",
        clone_url=f"{svc.api_exposed_url.rstrip('/')}/repos/{req.repo_path}.git",
        repo_uuid=req.repo_uuid,
        variables={**req.variables, **req.secret_variables},
        secret_names=frozenset(req.secret_variables),
    )
    fetch = svc.extra.get("fetch_file") or _gitserver_fetcher(svc, req.repo_path, req.commit_sha)
    return await create_runs(src, fetch, lambda r: _create(svc, r))


async def _create(svc: Services, req: RunCreateRequest) -> Run:
    return (await svc.runservice.create_run(req)).run


def _gitserver_fetcher(svc: Services, repo_path: str, commit_sha: str) -> Any:
    async def fetch(path: str) -> bytes:
        if svc.gitserver is not None:
            return await svc.gitserver.read_file(repo_path, commit_sha, path)
        async with GitserverClient(svc.gitserver_url, token=svc.gitserver_token) as client:
            return await client.read_file(repo_path, commit_sha, path)

    return fetch
