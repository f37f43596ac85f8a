"""Step implementations, identical for every driver: they only use the ``Pod`` interface.

Each step returns an exit status (0 = success) and writes what it does to its step log. Nothing
here relies on the image's tools: files go in with ``put_archive``/``write_archive``, archives come
out with ``read_archive`` and are filtered on the host by ``agola.util.tarsafe`` (globs,
``dest_dir``, and the safety rules), helper commands (``mkdir``, digests) are the pod's own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import posixpath
import re
import shutil
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import attrs

from agola.errors import AgolaError
from agola.services.executor import gitclone
from agola.services.executor.drivers.base import Pod, host_arch
from agola.services.executor.logs import LogFile
from agola.services.executor.store import ArchiveStore, FileChunks
from agola.types.runservice import (
    CloneStep,
    ExecutorTaskSpecData,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
)
from agola.util import tarsafe, tarstream
from agola.util.userregex import UserRegex, compile_user_regex

DEFAULT_SHELL = "/bin/sh -e"
DEFAULT_WORKING_DIR = "~/project"
# Bytes of files in one workspace or cache archive (executor.maxArchiveSize): beyond, the step fails.
DEFAULT_MAX_ARCHIVE_SIZE = 2 * 1024 * 1024 * 1024
# A save_cache content without paths saves everything under its source dir.
CACHE_DEFAULT_PATHS = ("**",)


def step_user(spec: ExecutorTaskSpecData) -> str:
    """The user of every step exec: the task ``user``, else container 0's ``user``."""
    return spec.user or (spec.containers[0].user if spec.containers else "")


def cache_contents(step: SaveCacheStep) -> list[SaveContent]:
    return [c if c.paths else attrs.evolve(c, paths=list(CACHE_DEFAULT_PATHS)) for c in step.contents]

# ----------------------------------------------------------------------------------- cache keys


class KeyContext:
    """What a cache key template may use: ``await ctx("sha256", "go.sum")``, ``ctx.env``, ``ctx.arch``.

    File digests are computed *inside the pod* (paths relative to the task working dir).
    """

    def __init__(self, pod: Pod, working_dir: str, user: str, env: Mapping[str, str], arch: str) -> None:
        self._pod, self._working_dir, self._user = pod, working_dir, user
        self.env: Mapping[str, str] = dict(env)
        self.arch = arch

    async def __call__(self, algo: str, path: str) -> str:
        return await self._pod.file_digest(path, algo, working_dir=self._working_dir, user=self._user)


# (template, hash_file) -> rendered key; may be sync (then it cannot hash) or async.
RenderKey = Callable[[str, KeyContext], str | Awaitable[str]]

async def default_render_key(template: str, ctx: KeyContext) -> str:
    """The pipeline's cache key template renderer (``agola.pipeline.cachekey``), as the reference's
    toolbox: ``md5sum``/``sha256sum`` (hashed in the pod), ``env``, ``os``, ``arch``, dates..."""
    from agola.pipeline.cachekey import render_for_task

    return await render_for_task(template, ctx)


async def render(render_key: RenderKey, template: str, ctx: KeyContext) -> str:
    result = render_key(template, ctx)
    if inspect.isawaitable(result):
        result = await result
    return str(result)


# ---------------------------------------------------------------------------------------- globs


def glob_to_regex(pattern: str) -> UserRegex:
    """Doublestar globs: ``**`` any depth (also zero dirs), ``*``/``?`` within one path segment.
    A pipeline's glob, so RE2: ``**/**/**/...x`` matches in linear time."""
    pattern = pattern.strip("/") or "**"
    i, out = 0, []
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
                i = end + 1
        elif pattern[i] == "{":
            end = pattern.find("}", i + 1)
            if end == -1:
                out.append(re.escape("{"))
                i += 1
            else:
                out.append("(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return compile_user_regex("".join(out) + r"\z")


def workspace_rename(paths: Sequence[str], dest_dir: str) -> Callable[[str, tarfile.TarInfo], str | None]:
    """For ``filter_archive`` on a ``get_archive`` tar: drop the top dir, keep matches, prefix dest."""
    regexes = [glob_to_regex(p) for p in paths]
    prefix = dest_dir.strip("/")
    prefix = "" if prefix in ("", ".") else prefix

    def rename(name: str, member: tarfile.TarInfo) -> str | None:
        _, sep, rel = name.partition("/")
        if not sep or not any(r.match(rel) for r in regexes):
            return None
        return f"{prefix}/{rel}" if prefix else rel

    return rename


# ---------------------------------------------------------------------------------------- steps


class StepFailed(AgolaError):
    """A step cannot go on; the message is written to the step log."""

    status = 400
    code = "step_failed"


class StepRunner:
    """Runs the steps of one task on one pod."""

    def __init__(
        self,
        *,
        task_id: str,
        spec: ExecutorTaskSpecData,
        pod: Pod,
        task_dir: Path,
        store: ArchiveStore,
        working_dir: str,
        home: str,
        render_key: RenderKey = default_render_key,
        arch: str = "",
        max_archive_size: int = DEFAULT_MAX_ARCHIVE_SIZE,
    ) -> None:
        self.task_id, self.spec, self.pod, self.task_dir, self.store = task_id, spec, pod, task_dir, store
        self.max_archive_size = max_archive_size
        self.working_dir, self.home = working_dir, home
        self.render_key = render_key
        self.arch = arch or host_arch()
        self.user = step_user(spec)
        self.tmp = task_dir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._executables: dict[str, bool] = {}

    def resolve(self, path: str, base: str | None = None) -> str:
        """``~`` is the step user's home; relative paths are relative to ``base`` (the working dir)."""
        if path == "~" or path.startswith("~/"):
            path = self.home.rstrip("/") + path[1:]
        if not path.startswith("/"):
            path = posixpath.join(base if base is not None else self.working_dir, path)
        return posixpath.normpath(path)

    async def run_step(self, index: int, step: Step, log: LogFile) -> int:
        try:
            if isinstance(step, RunStep):
                return await self.run(index, step, log)
            if isinstance(step, CloneStep):
                return await self.clone(step, log)
            if isinstance(step, SaveToWorkspaceStep):
                return await self.save_to_workspace(index, step, log)
            if isinstance(step, RestoreWorkspaceStep):
                return await self.restore_workspace(step, log)
            if isinstance(step, SaveCacheStep):
                return await self.save_cache(index, step, log)
            if isinstance(step, RestoreCacheStep):
                return await self.restore_cache(step, log)
            raise StepFailed(f"unknown step type {type(step).__name__}")
        except (AgolaError, gitclone.CloneError, tarfile.TarError, ValueError) as exc:
            await log.line(f"Error: {exc}")
            return 1

    # -------------------------------------------------------------------------------------- run

    async def _shell(self, step: RunStep, log: LogFile) -> list[str]:
        shell = step.shell or self.spec.shell or DEFAULT_SHELL
        argv = [part for part in shell.split(" ") if part]
        if argv[0] not in self._executables:
            self._executables[argv[0]] = await self.pod.has_executable(argv[0])
        fallback = self.pod.fallback_shell()
        if not self._executables[argv[0]] and shell == DEFAULT_SHELL and fallback:
            await log.line(f"{argv[0]} not found in the image: running the script with the executor's busybox sh")
            return fallback
        return argv

    async def run(self, index: int, step: RunStep, log: LogFile) -> int:
        shell = await self._shell(step, log)
        working_dir = self.resolve(step.working_dir) if step.working_dir else self.working_dir
        env = {**self.spec.environment, **step.environment}
        return await self.pod.run_script(
            shell, step.command.rstrip("\n").encode() + b"\n", f"step-{index}.sh",
            env=env, working_dir=working_dir, user=self.user, tty=step.tty, stdout=log.write,
        )

    # ------------------------------------------------------------------------------------ clone

    async def clone(self, step: CloneStep, log: LogFile) -> int:
        source = gitclone.clone_source(self.spec.environment)
        if source is None:
            raise StepFailed("no repository to clone (AGOLA_REPOSITORY_URL is not set)")
        checkout_dir = self.tmp / "checkout"
        shutil.rmtree(checkout_dir, ignore_errors=True)
        try:
            sha = await gitclone.checkout(
                source, checkout_dir, depth=step.depth, recurse_submodules=step.recurse_submodules, out=log.write
            )
            await log.line(f"Copying the checkout of {sha} to {self.working_dir}")

            def produce(out: tarstream.Writable, owner: tuple[int, int]) -> None:
                tarsafe.create(checkout_dir, out, owner=owner)  # straight into the pod when it can

            await self.pod.write_archive(self.working_dir, produce, user=self.user, tmp_dir=self.tmp)
        finally:
            await asyncio.to_thread(shutil.rmtree, checkout_dir, True)
        return 0

    # -------------------------------------------------------------------------------- archives

    async def build_archive(self, contents: Sequence[SaveContent], out_path: Path, log: LogFile,
                            what: str = "the archive") -> int:
        """One tar of the globbed ``contents`` (read from the pod, filtered safely on the host), at
        most ``max_archive_size`` bytes of files (else the step fails saying so)."""
        count = 0
        # Written under another name, then renamed: <n>.tar is there whole or not at all (the
        # executor's own restores read it; see RunserviceArchiveStore).
        partial = out_path.with_name(f".{out_path.name}.partial")
        try:
            # Links may point outside (a virtualenv's bin/python -> /usr/bin/python3): kept as links.
            with open(partial, "wb") as out, tarsafe.ArchiveWriter(
                out, external_links=True, max_size=self.max_archive_size, what=what,
            ) as writer:
                for content in contents:
                    source = self.resolve(content.source_dir or ".")
                    rename = workspace_rename(content.paths, content.dest_dir)
                    # Filtered as it comes out of the pod: no copy of the raw tar on disk.
                    count += await self.pod.read_archive(source, functools.partial(writer.copy_from, rename=rename))
            os.replace(partial, out_path)
        except tarsafe.ArchiveTooLarge as exc:
            raise tarsafe.ArchiveTooLarge(f"{exc.message} (executor.maxArchiveSize): save fewer files") from None
        finally:
            partial.unlink(missing_ok=True)
        await log.line(f"archived {count} entries")
        return count

    async def restore_archive(self, chunks: AsyncIterator[bytes], dest_dir: str) -> None:
        # Filtered as it arrives (never trust stored archives either) and handed to the pod as
        # it is filtered: each entry is checked before the pod gets it.
        reader = None if isinstance(chunks, FileChunks) else tarsafe.chunk_reader(chunks)

        def produce(out: tarstream.Writable, owner: tuple[int, int]) -> None:
            if reader is not None:
                tarsafe.filter_archive(reader, out, owner=owner, external_links=True)
                return
            assert isinstance(chunks, FileChunks)
            with chunks.open() as src:  # a local file: read in this thread, not through the loop
                tarsafe.filter_archive(src, out, owner=owner, external_links=True)

        await self.pod.write_archive(dest_dir, produce, user=self.user, tmp_dir=self.tmp)

    async def save_to_workspace(self, index: int, step: SaveToWorkspaceStep, log: LogFile) -> int:
        archives = self.task_dir / "archives"
        archives.mkdir(exist_ok=True)
        archive = archives / f"{index}.tar"
        await self.build_archive(step.contents, archive, log, "the workspace archive")
        await self.store.put_workspace(self.task_id, index, archive)
        return 0

    async def restore_workspace(self, step: RestoreWorkspaceStep, log: LogFile) -> int:
        dest = self.resolve(step.dest_dir or ".")
        for op in self.spec.workspace_operations:
            await log.line(f"restoring workspace of task {op.task_id} step {op.step} into {dest}")
            await self.restore_archive(self.store.get_workspace(op.task_id, op.step), dest)
        return 0

    # ----------------------------------------------------------------------------------- caches

    def _key_context(self) -> KeyContext:
        return KeyContext(self.pod, self.working_dir, self.user, self.spec.environment, self.arch)

    def _full_key(self, key: str) -> str:
        return f"{self.spec.cache_prefix}-{key}" if self.spec.cache_prefix else key

    async def save_cache(self, index: int, step: SaveCacheStep, log: LogFile) -> int:
        key = await render(self.render_key, step.key, self._key_context())
        await log.line(f'cache key "{key}"')
        full = self._full_key(key)
        if await self.store.cache_exists(full):
            await log.line(f'cache for key "{key}" already exists')
            return 0
        await log.line(f'no cache available for key "{key}". Saving.')
        archive = self.task_dir / "archives" / f"cache-{index}.tar"
        archive.parent.mkdir(exist_ok=True)
        try:
            await self.build_archive(cache_contents(step), archive, log, "the cache archive")
            await self.store.put_cache(full, archive)
        finally:
            archive.unlink(missing_ok=True)
        return 0

    async def restore_cache(self, step: RestoreCacheStep, log: LogFile) -> int:
        await log.line(f"restoring cache: {', '.join(step.keys)}")
        dest = self.resolve(step.dest_dir or ".")
        ctx = self._key_context()
        for template in step.keys:
            key = await render(self.render_key, template, ctx)
            chunks = await self.store.open_cache(self._full_key(key))
            if chunks is None:
                await log.line(f'no cache available for key "{key}"')
                continue
            await log.line(f'restoring cache with key "{key}"')
            await self.restore_archive(chunks, dest)
            return 0
        return 0


__all__ = [
    "DEFAULT_SHELL",
    "DEFAULT_WORKING_DIR",
    "KeyContext",
    "RenderKey",
    "StepFailed",
    "StepRunner",
    "default_render_key",
    "glob_to_regex",
    "step_user",
    "workspace_rename",
]
