"""``POST /webhooks?projectid=<id>``: a forge's delivery becomes the project's runs (spec §6.5).

In order: the project is loaded (404 when deleted), the delivery's signature is verified with the
project's webhook secret (401 when unsigned or wrong: nothing else happens), the payload is parsed
into a ``WebhookEvent`` (a closed PR, a deleted branch or an event agola doesn't build: 200, no
run; a payload for another repository than the project's, by the forge's repository id or else
the path compared case-insensitively: 400), a delivery already built (same delivery id, or same signed payload: the id header is not
signed, so a replay under a new id is caught too) is acknowledged without new runs, and the
commit's runs are created through the same path as direct runs (``runcreation.create_runs``): the
pipeline file read at the commit through the forge API, one run group per branch, tag or pull
request, ``when`` conditions, ``[ci skip]``. The answer is 2xx only once the runs are created.

Runs clone with the project's SSH key from the repository's SSH URL (host key from the remote
source unless it or the project says to skip the check). Runs of a pull request from a fork get
no variables unless the project passes them (``pass_vars_to_forked_pr``), and never a privileged
container (the run is a setup error naming the tasks).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Mapping

import attrs

from agola.errors import BadRequest, NotExist
from agola.forges import EventKind, ForgeDriver, WebhookEvent, driver_for
from agola.pipeline import CONFIG_PATHS
from agola.services.configstore.tree import RunRef, run_variables
from agola.services.gateway.actions import Services
from agola.services.gateway.actions.linkedaccounts import account_driver
from agola.services.gateway.actions.projectrepo import project_account
from agola.services.gateway.runcreation import RunSource, create_runs, run_group
from agola.types.configstore import (
    LinkedAccount,
    Project,
    ProjectResponse,
    RemoteRepositoryConfigType,
    RemoteSource,
    User,
)
from agola.types.runservice import Run, RunCreateRequest
from agola.types.when import RefType
from agola.util.log import get_logger

log = get_logger(__name__)

MAX_BODY = 5 * 1024 * 1024
DELIVERY_ANNOTATION = "webhook_delivery_id"
PAYLOAD_ANNOTATION = "webhook_payload_sha256"
# Runs of a group searched for a delivery id already built (a redelivery comes soon after).
DEDUP_SCAN = 100
# Where a forge's web UI shows a branch or a tag (links of manual runs).
_TREE_LINKS = {"gitea": "src/{kind}", "github": "tree", "gitlab": "-/tree"}
_REF_TYPES = {EventKind.PUSH: RefType.BRANCH, EventKind.TAG: RefType.TAG, EventKind.PULL_REQUEST: RefType.PULL_REQUEST}


@attrs.frozen
class WebhookResult:
    runs: list[Run] = attrs.field(factory=list)
    # Why nothing was created, when nothing was ("ignored event", "already delivered").
    note: str = ""


class _InFlight:
    """Payloads being built in this gateway: a concurrent redelivery waits for the first."""

    def __init__(self, size: int = 4096) -> None:
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self._size = size

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
            while len(self._locks) > self._size:
                self._locks.popitem(last=False)
        return lock


_IN_FLIGHT = _InFlight()


async def _project(svc: Services, project_id: str) -> Project:
    if not project_id:
        raise BadRequest("projectid query parameter required")
    try:
        resp: ProjectResponse = await svc.configstore.get_project(project_id)
    except NotExist:
        raise NotExist(f"project {project_id!r} doesn't exist") from None
    if resp.project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        raise BadRequest("this project has no remote repository")
    return resp.project


async def handle_webhook(svc: Services, project_id: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    project = await _project(svc, project_id)
    rs: RemoteSource = await svc.configstore.get_remote_source(project.remote_source_id)
    async with driver_for(rs) as parser:
        event = parser.parse_webhook(headers, body, project.webhook_secret)  # verifies first
    if event is None:
        return WebhookResult(note="event ignored: nothing to build")
    if not _same_repository(project, event):
        # A hook's URL (and secret) copied to another repository, or a payload made for one.
        raise BadRequest(f"the delivery is for repository {event.repo_path!r}, not this project's")
    src = _run_source(project, rs, event)
    # The delivery id header is not signed: a replayed body under a new id is the same payload.
    marks = {PAYLOAD_ANNOTATION: hashlib.sha256(body).hexdigest()}
    if event.delivery_id:
        marks[DELIVERY_ANNOTATION] = event.delivery_id
    async with _IN_FLIGHT.lock(marks[PAYLOAD_ANNOTATION]):
        # Independent reads, at once: the account the forge is called with, and the runs already built.
        (_, user, la), built = await asyncio.gather(project_account(svc, project, rs),
                                                   _already_built(svc, src, marks))
        if built:
            log.info("webhook delivery already built", project=project.id, delivery=event.delivery_id)
            return WebhookResult(note="delivery already built")
        return await _build(svc, project, src, event, await account_driver(svc, rs, user.id, la), marks)


def _same_repository(project: Project, event: WebhookEvent) -> bool:
    """The repository of the delivery is the project's: same forge id when both are known (a
    renamed repository keeps it), else the same path, case-insensitively as the forges compare."""
    if event.repo_id and project.repository_id:
        return event.repo_id == project.repository_id
    return event.repo_path.lower() == project.repository_path.lower()


async def _already_built(svc: Services, src: RunSource, marks: Mapping[str, str]) -> bool:
    runs, _ = await svc.runservice.list_runs(groups=[run_group(src)], limit=DEDUP_SCAN)
    return any(r.annotations.get(k) == v for r in runs for k, v in marks.items())


async def _build(svc: Services, project: Project, src: RunSource, event: WebhookEvent,
                 forge: ForgeDriver, marks: Mapping[str, str] | None = None) -> WebhookResult:
    async with forge, _PipelineReads(forge, project.repository_path, event.commit_sha) as reads:
        # The pipeline file candidates are read meanwhile (one forge round trip, not one per name).
        src = attrs.evolve(src, variables=await _variables(svc, project, src, event))
        fetch = reads.fetch

        async def create(req: RunCreateRequest) -> Run:
            if marks:
                req = attrs.evolve(req, annotations={**req.annotations, **marks})
            if event.from_fork:
                req = refuse_privileged(req)
            return (await svc.runservice.create_run(req)).run

        runs = await create_runs(src, fetch, create)
    log.info("webhook built", project=project.id, event=str(event.kind), ref=event.ref, runs=len(runs),
             delivery=event.delivery_id)
    return WebhookResult(runs=runs)


class _PipelineReads:
    """The reads of every pipeline file name (``CONFIG_PATHS``) at a commit, started at once:
    ``create_runs`` still takes the first present in order, each answer as the forge gave it (a
    missing file NotExist, a failed read its error). Reads not awaited are cancelled at exit."""

    def __init__(self, forge: ForgeDriver, repo_path: str, commit_sha: str) -> None:
        self._forge, self._repo, self._sha = forge, repo_path, commit_sha
        self._reads: dict[str, asyncio.Task[bytes]] = {}

    async def __aenter__(self) -> _PipelineReads:
        self._reads = {path: asyncio.ensure_future(self._read(path)) for path in CONFIG_PATHS}
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._reads.values():
            task.cancel()
        await asyncio.gather(*self._reads.values(), return_exceptions=True)

    def _read(self, path: str) -> Awaitable[bytes]:
        return self._forge.get_file(self._repo, self._sha, path)

    async def fetch(self, path: str) -> bytes:
        task = self._reads.get(path)
        return await (task if task is not None else self._read(path))


async def _variables(svc: Services, project: Project, src: RunSource, event: WebhookEvent) -> dict[str, str]:
    run = RunRef(ref_type=src.ref_type, ref=src.ref, branch=src.branch, tag=src.tag,
                 pull_request_from_same_repo=not event.from_fork)
    if run.ref_type == RefType.PULL_REQUEST and event.from_fork and not project.pass_vars_to_forked_pr:
        return {}  # an outsider's pull request never sees the project's secrets
    variables, secrets = await asyncio.gather(svc.configstore.get_variables("project", project.id, True),
                                              svc.configstore.get_secrets("project", project.id, True))
    return run_variables(project, variables, secrets, run)


async def create_manual_runs(svc: Services, project: Project, rs: RemoteSource, user: User, la: LinkedAccount, *,
                             branch: str = "", tag: str = "", ref: str = "", commit_sha: str = "") -> list[Run]:
    """``POST /projects/{ref}/createrun``: the runs of a branch, a tag or a commit of the project's
    repository, as if pushed (trigger ``manual``), with the caller's linked account."""
    given = [x for x in (branch, tag, ref) if x]
    if not given:
        raise BadRequest("one of branch, tag or ref is required")
    if len(given) > 1:
        raise BadRequest("only one of branch, tag or ref can be provided")
    if branch:
        ref = f"refs/heads/{branch}"
    elif tag:
        ref = f"refs/tags/{tag}"
    elif ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif ref.startswith("refs/tags/") and len(ref) > len("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
    else:
        raise BadRequest(f"ref {ref!r} is not a branch (refs/heads/...) or a tag (refs/tags/...) ref")
    async with await account_driver(svc, rs, user.id, la) as forge:
        repo = await forge.repo_info(project.repository_path)
        sha = commit_sha or await forge.get_ref(repo.path, ref)
        message = f"Tag {tag}" if tag else (await forge.get_commit_message(repo.path, sha)) or ref
    web = repo.html_url
    tree = _TREE_LINKS.get(rs.type, "tree")
    event = WebhookEvent(
        kind=EventKind.TAG if tag else EventKind.PUSH, commit_sha=sha, ref=ref, message=message, sender=user.name,
        repo_path=repo.path, repo_web_url=web, ssh_url=repo.ssh_clone_url, branch=branch, tag=tag,
        commit_link=f"{web}/commit/{sha}",
        branch_link=f"{web}/{tree.format(kind='branch')}/{branch}" if branch else "",
        tag_link=f"{web}/{tree.format(kind='tag')}/{tag}" if tag else "")
    src = attrs.evolve(_run_source(project, rs, event), trigger="manual", webhook_event="", webhook_sender="")
    return (await _build(svc, project, src, event, await account_driver(svc, rs, user.id, la))).runs


def refuse_privileged(req: RunCreateRequest) -> RunCreateRequest:
    """A fork's pull request never gets a privileged container: such a run becomes a setup error
    naming the tasks (an outsider's code would otherwise own the executor host)."""
    tasks = sorted(t.name for t in (req.run_config_tasks or {}).values() if t.runtime.privileged)
    if not tasks:
        return req
    return attrs.evolve(req, run_config_tasks=None, setup_errors=[
        f"privileged containers are not allowed in runs of pull requests from forks (tasks: {', '.join(tasks)})"])


def _run_source(project: Project, rs: RemoteSource, event: WebhookEvent) -> RunSource:
    return RunSource(
        run_type="project", base_id=project.id, ref_type=_REF_TYPES[event.kind], ref=event.ref,
        commit_sha=event.commit_sha, message=event.message or event.ref, clone_url=event.ssh_url,
        trigger="webhook", branch=event.branch, tag=event.tag, pull_request_id=event.pull_request_id,
        ssh_private_key=project.ssh_private_key, ssh_host_key=rs.ssh_host_key,
        skip_ssh_host_key_check=rs.skip_ssh_host_key_check or project.skip_ssh_host_key_check,
        commit_link=event.commit_link, compare_link=event.compare_link, branch_link=event.branch_link,
        tag_link=event.tag_link, pull_request_link=event.pull_request_link, webhook_event=str(event.kind),
        webhook_sender=event.sender,
    )
