"""Creating the runs of a commit (spec §6.6), shared by direct runs, manual project runs and (later)
webhooks.

The pipeline file is fetched at the commit (first of ``CONFIG_PATHS`` present), parsed and checked
by ``agola.pipeline``; each matching run of the file becomes one runservice run with the static
environment (``CI``, ``AGOLA_*``), the annotations and the cache group of the commit. A missing or
broken pipeline file still creates one run, in phase ``setuperror``, whose ``setup_errors`` are the
located messages of the checker, so the user sees why nothing ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

import attrs

from agola.errors import AgolaError, Internal, NotExist
from agola.pipeline import (
    CONFIG_PATHS,
    PipelineError,
    PipelineNotFound,
    RunContext,
    generate_run_configs,
    load_pipeline_async,
)
from agola.types.runservice import Run, RunCreateRequest
from agola.types.when import RefType
from agola.util.log import get_logger

log = get_logger(__name__)

SETUP_ERROR_RUN_NAME = "Setup Error"

# path inside the repository -> file bytes; NotExist when the file isn't there at that commit.
FetchFile = Callable[[str], Awaitable[bytes]]
CreateRun = Callable[[RunCreateRequest], Awaitable[Run]]


@attrs.frozen
class RunSource:
    """Everything known about the commit to build."""

    run_type: str  # "project" | "user"
    base_id: str  # project id or user id
    ref_type: str  # RefType
    ref: str
    commit_sha: str
    message: str
    clone_url: str
    trigger: str = "manual"  # "manual" | "webhook"
    branch: str = ""
    tag: str = ""
    pull_request_id: str = ""
    repo_uuid: str = ""  # direct runs: the local repository
    variables: dict[str, str] = attrs.field(factory=dict, repr=False)
    # Direct runs: the variables given as secrets (``--secret``). A project's variables all come
    # from its secrets, so every one of them is masked.
    secret_names: frozenset[str] = frozenset()
    ssh_private_key: str = attrs.field(default="", repr=False)
    ssh_host_key: str = ""
    skip_ssh_host_key_check: bool = False
    commit_link: str = ""
    compare_link: str = ""
    branch_link: str = ""
    tag_link: str = ""
    pull_request_link: str = ""
    webhook_event: str = ""
    webhook_sender: str = ""

    def masked_values(self) -> list[str]:
        """The values the executor writes as ``***`` in the logs of this commit's runs."""
        secret = self.variables if self.run_type == "project" else {
            k: v for k, v in self.variables.items() if k in self.secret_names}
        values = {*secret.values(), self.ssh_private_key}
        return sorted(v for v in values if v)

    def context(self) -> RunContext:
        if self.ref_type == RefType.BRANCH:
            return RunContext.for_branch(self.branch, self.commit_sha)
        if self.ref_type == RefType.TAG:
            return RunContext.for_tag(self.tag, self.commit_sha)
        return RunContext.for_pull_request(self.pull_request_id, self.ref, self.commit_sha)


def run_group(src: RunSource) -> str:
    """``/<project|user>/<id>/<branch|tag|pr>/<escaped name>`` (spec §3.3)."""
    if src.ref_type == RefType.BRANCH:
        sub, name = "branch", src.branch
    elif src.ref_type == RefType.TAG:
        sub, name = "tag", src.tag
    else:
        sub, name = "pr", src.pull_request_id
    return f"/{src.run_type}/{src.base_id}/{sub}/{quote(name, safe='')}"


def cache_group(src: RunSource) -> str:
    """Direct runs: per user *and* local repository, so two repositories of one user never share
    caches. Project runs: empty, the runservice then uses the project id."""
    if src.run_type == "user":
        return f"{src.base_id}-{src.repo_uuid}"
    return ""


def git_host_port(clone_url: str) -> tuple[str, str]:
    """Host and port of a clone URL: ``git@host:path``, ``ssh://``, ``http(s)://`` (default 22)."""
    if "://" not in clone_url:
        # scp-like syntax: [user@]host:path
        host = clone_url.split(":", 1)[0].rsplit("@", 1)[-1]
        return host, "22"
    parts = urlsplit(clone_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", str(port) if port else "22"


def static_environment(src: RunSource) -> dict[str, str]:
    host, port = git_host_port(src.clone_url)
    env = {
        "CI": "true",
        "AGOLA_SSHPRIVKEY": src.ssh_private_key,
        "AGOLA_REPOSITORY_URL": src.clone_url,
        "AGOLA_GIT_HOST": host,
        "AGOLA_GIT_PORT": port,
        "AGOLA_GIT_BRANCH": src.branch,
        "AGOLA_GIT_TAG": src.tag,
        "AGOLA_GIT_REF": src.ref,
        "AGOLA_GIT_COMMITSHA": src.commit_sha,
    }
    if src.ssh_host_key:
        env["AGOLA_SSHHOSTKEY"] = src.ssh_host_key
    if src.skip_ssh_host_key_check:
        env["AGOLA_SKIPSSHHOSTKEYCHECK"] = "1"
    return env


def run_annotations(src: RunSource) -> dict[str, str]:
    out = {
        "run_type": src.run_type,
        "ref_type": src.ref_type,
        "run_creation_trigger": src.trigger,
        "webhook_event": src.webhook_event,
        "webhook_sender": src.webhook_sender,
        "commit_sha": src.commit_sha,
        "ref": src.ref,
        "message": src.message,
        "commit_link": src.commit_link,
        "compare_link": src.compare_link,
    }
    out["projectid" if src.run_type == "project" else "userid"] = src.base_id
    if src.branch:
        out.update(branch=src.branch, branch_link=src.branch_link)
    if src.tag:
        out.update(tag=src.tag, tag_link=src.tag_link)
    if src.pull_request_id:
        out.update(pull_request_id=src.pull_request_id, pull_request_link=src.pull_request_link)
    return out


async def fetch_pipeline_files(fetch: FetchFile) -> dict[str, bytes]:
    """The first pipeline file present at the commit, as ``{path: bytes}``."""
    for path in CONFIG_PATHS:
        try:
            return {path: await fetch(path)}
        except NotExist:
            continue
        except AgolaError as exc:
            log.warning("fetching the pipeline file failed", path=path, error=exc.message)
            raise Internal("failed to fetch config file") from exc
    raise PipelineNotFound("no pipeline file found: looked for " + ", ".join(CONFIG_PATHS))


async def create_runs(src: RunSource, fetch: FetchFile, create: CreateRun) -> list[Run]:
    """Create the runs of a commit; returns them (one setup error run when the file is bad)."""
    group = run_group(src)
    base = RunCreateRequest(
        group=group,
        static_environment=static_environment(src),
        annotations=run_annotations(src),
        cache_group=cache_group(src),
    )
    ctx = src.context()
    try:
        files = await fetch_pipeline_files(fetch)
        config = await load_pipeline_async(files, ctx)
    except PipelineNotFound as exc:
        return [await create(attrs.evolve(base, name=SETUP_ERROR_RUN_NAME, setup_errors=[exc.message]))]
    except PipelineError as exc:
        return [await create(attrs.evolve(base, name=SETUP_ERROR_RUN_NAME, setup_errors=exc.setup_errors()))]
    masked = src.masked_values()
    runs: list[Run] = []
    for generated in generate_run_configs(config, ctx, src.message, src.variables):
        tasks = {tid: attrs.evolve(task, masked_values=masked) if masked else task
                 for tid, task in generated.tasks.items()}
        runs.append(await create(attrs.evolve(base, name=generated.name, run_config_tasks=tasks)))
    log.info("runs created", group=group, runs=len(runs), commit=src.commit_sha)
    return runs
