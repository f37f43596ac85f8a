"""A delivery's pipeline file: every candidate name is read from the forge at once (one round
trip, not one per name), and the first present in ``CONFIG_PATHS`` order is still the one built."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from agola.errors import Internal
from agola.forges import ForgeDriver
from agola.forges.base import ForgeError, ForgeNotFound
from agola.pipeline import CONFIG_PATHS
from agola.services.gateway.actions.webhooks import _PipelineReads
from agola.services.gateway.runcreation import fetch_pipeline_files


class SlowForge:
    """Answers a file read only once every candidate name is being read (sequential reads would
    never be answered), then as ``files`` says: bytes, or an error to raise."""

    def __init__(self, files: dict[str, bytes | Exception]) -> None:
        self.files = files
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.all_started = asyncio.Event()

    async def get_file(self, repo_path: str, commit_sha: str, file_path: str) -> bytes:
        assert (repo_path, commit_sha) == ("dev/app", "c0ffee")
        self.started.append(file_path)
        if len(self.started) == len(CONFIG_PATHS):
            self.all_started.set()
        try:
            await self.all_started.wait()
            if file_path == CONFIG_PATHS[-1]:
                await asyncio.sleep(3600)  # the last name answers late: not waited for when not needed
        except asyncio.CancelledError:
            self.cancelled.append(file_path)
            raise
        found = self.files.get(file_path)
        if found is None:
            raise ForgeNotFound("gitea", "get_file", "not found")
        if isinstance(found, Exception):
            raise found
        return found


async def read(forge: SlowForge) -> dict[str, bytes]:
    async with _PipelineReads(cast(ForgeDriver, cast(Any, forge)), "dev/app", "c0ffee") as reads:
        return await asyncio.wait_for(fetch_pipeline_files(reads.fetch), timeout=30)


async def test_the_names_are_read_at_once_and_the_first_present_wins() -> None:
    forge = SlowForge({CONFIG_PATHS[1]: b"second", CONFIG_PATHS[2]: b"third"})
    assert await read(forge) == {CONFIG_PATHS[1]: b"second"}
    assert sorted(forge.started) == sorted(CONFIG_PATHS)
    assert forge.cancelled == [CONFIG_PATHS[-1]]  # the read still pending is not left behind


async def test_a_failed_read_before_the_file_found_still_fails_the_delivery() -> None:
    forge = SlowForge({CONFIG_PATHS[0]: ForgeError("gitea", "get_file", "HTTP 500"), CONFIG_PATHS[1]: b"second"})
    with pytest.raises(Internal):
        await read(forge)
