"""Cache key templates: checked at config time, rendered safely later."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

import pytest

from agola.pipeline.cachekey import (
    CacheKeyError,
    RenderEnv,
    parse,
    render,
    render_async,
    render_for_task,
)

NOW = dt.datetime(2024, 3, 7, 12, 30, 5, tzinfo=dt.UTC)
ENV = RenderEnv(environment={"GOVERSION": "1.21"}, now=NOW, os="linux", arch="arm64")


def fake_hash(func: str, path: str) -> str:
    algo = {"md5sum": hashlib.md5, "sha256sum": hashlib.sha256}[func]
    return algo(path.encode()).hexdigest()


def test_every_function_renders() -> None:
    key = render(
        'k-{{ md5sum "go.sum" }}-{{ sha256sum "a b" }}-{{ env "GOVERSION" }}-{{ env "NOPE" }}-'
        "{{ os }}-{{ arch }}-{{ year }}-{{ month }}-{{ day }}-{{ epoch }}-{{ unixtime }}",
        hash_file=fake_hash,
        env=ENV,
    )
    epoch = int(NOW.timestamp())
    assert key == (
        f"k-{hashlib.md5(b'go.sum').hexdigest()}-{hashlib.sha256(b'a b').hexdigest()}-1.21--"
        f"linux-arm64-2024-03-07-{epoch}-{epoch * 10**9}"
    )


def test_text_and_whitespace_control() -> None:
    assert render("plain-key", hash_file=fake_hash) == "plain-key"
    assert render("a- {{- arch -}} -b", hash_file=fake_hash, env=ENV) == "a-arm64-b"
    assert render("a{{/* a comment */}}b", hash_file=fake_hash) == "ab"
    assert render('{{ env "A\\tB" }}|{{ env `raw\\n` }}', hash_file=fake_hash,
                  env=RenderEnv({"A\tB": "tab", "raw\\n": "raw"})) == "tab|raw"


def test_files_lists_what_to_hash() -> None:
    tpl = parse('{{ md5sum "go.sum" }}{{ arch }}{{ sha256sum "package-lock.json" }}')
    assert tpl.files() == [("md5sum", "go.sum"), ("sha256sum", "package-lock.json")]


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ md5 }}", 'function "md5" not defined'),
        ("{{ md5sum }}", "wrong number of args for md5sum: want 1 got 0"),
        ('{{ year "x" }}', "wrong number of args for year: want 0 got 1"),
        ("{{ md5sum go.sum }}", "arguments must be quoted strings"),
        ("{{ .Environment.HOME }}", "only function calls"),
        ('{{ env "A" | printf }}', "arguments must be quoted strings"),
        ("cache-{{ arch ", "unclosed action at offset 6"),
        ("{{ }}", "missing value for command"),
        ("{{/* open }}", "unclosed comment"),
        ('{{ env "\\q" }}', "invalid escape"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(CacheKeyError) as info:
        parse(template)
    assert message in str(info.value)


def test_rendered_keys_are_bounded() -> None:
    with pytest.raises(CacheKeyError):
        render('{{ md5sum "f" }}', hash_file=lambda f, p: "x" * (1024 * 1024 + 1))


async def test_async_rendering_awaits_the_hasher() -> None:
    calls = []

    async def hasher(func: str, path: str) -> str:
        calls.append((func, path))
        return "h"

    assert await render_async('{{ sha256sum "x" }}-{{ md5sum "y" }}', hash_file=hasher, env=ENV) == "h-h"
    assert calls == [("sha256sum", "x"), ("md5sum", "y")]


async def test_render_for_an_executor_key_context() -> None:
    class KeyContext:
        def __init__(self) -> None:
            self.env: Mapping[str, str] = {"V": "1"}
            self.arch = "amd64"

        async def __call__(self, algo: str, path: str) -> str:
            return f"{algo}:{path}"

    key = await render_for_task('c-{{ md5sum "go.sum" }}-{{ sha256sum "a" }}-{{ env "V" }}-{{ arch }}', KeyContext())
    assert key == "c-md5:go.sum-sha256:a-1-amd64"
