"""Finding and evaluating pipeline files: precedence, limits and the evaluation sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.errors import BadRequest, NotExist
from agola.pipeline import (
    CONFIG_PATHS,
    EvalLimits,
    PipelineError,
    PipelineNotFound,
    RunContext,
    load_pipeline,
    load_pipeline_async,
    parse_pipeline,
)

YAML = b"runs: [{name: from-yaml, tasks: [{name: t, runtime: {containers: [{image: busybox}]}}]}]\n"
JSON = b'{"runs": [{"name": "from-json", "tasks": [{"name": "t", "runtime": {"containers": [{"image": "b"}]}}]}]}'
JSONNET = b"function(ctx) {runs: [{name: 'from-jsonnet-' + ctx.branch, tasks: [{name: 't', runtime: {containers: [{image: 'b'}]}}]}]}"
STAR = (
    b'def main(ctx):\n'
    b'    return {"runs": [{"name": "from-star-" + ctx["ref_type"], '
    b'"tasks": [{"name": "t", "runtime": {"containers": [{"image": "b"}]}}]}]}\n'
)

SMALL = EvalLimits(timeout=3.0, memory=256 * 1024 * 1024)


def run_names(files: dict[str, bytes], ctx: RunContext | None = None) -> list[str]:
    return [r.name for r in load_pipeline(files, ctx).runs]


def test_precedence_is_starlark_jsonnet_json_yml_yaml() -> None:
    assert CONFIG_PATHS == (
        ".agola/config.star",
        ".agola/config.jsonnet",
        ".agola/config.json",
        ".agola/config.yml",
        ".agola/config.yaml",
    )
    files = {
        ".agola/config.yaml": YAML.replace(b"from-yaml", b"from-dot-yaml"),
        ".agola/config.yml": YAML,
        ".agola/config.json": JSON,
        ".agola/config.jsonnet": JSONNET,
        ".agola/config.star": STAR,
    }
    assert run_names(files) == ["from-star-branch"]
    del files[".agola/config.star"]
    assert run_names(files, RunContext.for_branch("dev")) == ["from-jsonnet-dev"]
    del files[".agola/config.jsonnet"]
    assert run_names(files) == ["from-json"]
    del files[".agola/config.json"]
    assert run_names(files) == ["from-yaml"]
    del files[".agola/config.yml"]
    assert run_names(files) == ["from-dot-yaml"]


def test_mapping_keys_may_omit_the_agola_dir() -> None:
    assert run_names({"config.yml": YAML}) == ["from-yaml"]


def test_missing_pipeline_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(PipelineNotFound) as info:
        load_pipeline({"README.md": b"hi"})
    assert isinstance(info.value, NotExist)
    assert ".agola/config.yml" in str(info.value)
    with pytest.raises(PipelineNotFound):
        load_pipeline(tmp_path)


def test_directory_is_a_repository_or_its_agola_dir(tmp_path: Path) -> None:
    (tmp_path / ".agola").mkdir()
    (tmp_path / ".agola" / "config.yml").write_bytes(YAML)
    (tmp_path / ".agola" / "config.json").write_bytes(JSON)
    assert [r.name for r in load_pipeline(tmp_path).runs] == ["from-json"]
    assert [r.name for r in load_pipeline(tmp_path / ".agola").runs] == ["from-json"]


async def test_async_loading_evaluates_off_the_loop() -> None:
    config = await load_pipeline_async({".agola/config.star": STAR}, RunContext.for_tag("v1"))
    assert [r.name for r in config.runs] == ["from-star-tag"]


def test_files_over_one_mebibyte_are_refused() -> None:
    big = YAML + b"#" + b"x" * (1024 * 1024) + b"\n"
    with pytest.raises(PipelineError) as info:
        parse_pipeline(".agola/config.yml", big)
    assert "config size is greater than allowed max config size" in str(info.value)
    assert isinstance(info.value, BadRequest)


def test_evaluated_documents_over_one_mebibyte_are_refused() -> None:
    source = b'def main(ctx):\n    return {"runs": [], "padding": "x" * 1100000}\n'
    with pytest.raises(PipelineError) as info:
        parse_pipeline(".agola/config.star", source, limits=SMALL)
    assert "config size is greater than allowed max config size" in info.value.errors[0].message


@pytest.mark.parametrize(
    "name, source",
    [
        # Exponential but shallow: pure CPU, little memory.
        ("config.jsonnet", b"local fib(n) = if n < 2 then n else fib(n - 1) + fib(n - 2); {runs: fib(60)}"),
        ("config.star", b"def main(ctx):\n    n = 0\n    for i in range(2147483647):\n        n = i % 7\n    return {}\n"),
    ],
)
def test_endless_evaluation_is_stopped(name: str, source: bytes) -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(name, source, limits=EvalLimits(timeout=1.5, memory=256 * 1024 * 1024))
    message = info.value.errors[0].message
    assert message.endswith("evaluation did not finish within 1.5s"), message
    assert info.value.errors[0].hint == "look for an endless loop or a very large computation"


@pytest.mark.parametrize(
    "name, source",
    [
        ("config.jsonnet", b"{runs: std.length(std.makeArray(200000000, function(i) [i]))}"),
        ("config.star", b"def main(ctx):\n    x = [[i] for i in range(200000000)]\n    return {}\n"),
    ],
)
def test_memory_bombs_are_stopped(name: str, source: bytes) -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(name, source, limits=SMALL)
    message = info.value.errors[0].message
    assert message.startswith("failed to execute")
    assert "ran out of memory (limit 256 MiB)" in message or "did not finish" in message, message


def test_invalid_utf8_is_a_located_error() -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline("config.yml", b"runs: [\xff]")
    assert "not valid UTF-8" in str(info.value)


def test_byte_order_mark_is_ignored() -> None:
    config = parse_pipeline("config.yml", b"\xef\xbb\xbf" + YAML)
    assert config.runs[0].name == "from-yaml"


def test_unknown_extension() -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline("config.toml", b"")
    assert "unknown pipeline file format" in str(info.value)


def test_located_errors_serialize_for_api_callers() -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(".agola/config.yml", b"runs:\n  - name: r\n    tasks:\n      - name: t\n")
    body = info.value.to_body()
    assert body["code"] == "bad_request"
    assert body["details"] == [
        {
            "message": 'task "t": runtime is not defined',
            "file": ".agola/config.yml",
            "path": "runs[0].tasks[0]",
            "line": 4,
            "column": 9,
            "hint": "add `runtime: {containers: [{image: ...}]}`",
        }
    ]
    assert body["message"].startswith(".agola/config.yml:4:9: runs[0].tasks[0]: task")


def test_context_for_refs() -> None:
    assert RunContext.for_ref("refs/heads/feature/x") == RunContext.for_branch("feature/x")
    assert RunContext.for_ref("refs/tags/v1.0").tag == "v1.0"
    pr = RunContext.for_ref("refs/pull/12/head", "abc")
    assert (pr.ref_type, pr.pull_request_id, pr.commit_sha, pr.ref) == ("pull_request", "12", "abc", "refs/pull/12/head")
    assert RunContext.for_ref("refs/merge-requests/3/head").pull_request_id == "3"
    with pytest.raises(ValueError):
        RunContext.for_ref("master")
