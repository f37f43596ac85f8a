"""`agola pipeline check` and `agola pipeline show`, driven through click like a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agola.cli.pipeline import pipeline

PIPELINE = """\
runs:
  - name: build
    tasks:
      - name: checkout
        runtime: {containers: [{image: busybox}]}
        steps: [clone: , {run: make}]
      - name: test
        runtime: {containers: [{image: busybox}]}
        depends: [checkout]
        environment: {TOKEN: {from_variable: token}}
        task_timeout_interval: 10m
      - name: deploy
        runtime: {containers: [{image: busybox}]}
        depends: [{test: [on_success, on_failure]}]
        when: {tag: '/^v/'}
        approval: true
  - name: nightly
    when: {branch: nightly}
    tasks:
      - {name: x, runtime: {containers: [{image: busybox}]}}
"""

BROKEN = """\
runs:
  - name: build
    tasks:
      - name: a
        runtime: {containers: [{image: busybox}]}
        depends: [missing]
      - name: b
        steps: [{run: make}]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".agola").mkdir()
    (tmp_path / ".agola" / "config.yml").write_text(PIPELINE)
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(pipeline, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_check_ok_prints_a_line_per_run(repo: Path) -> None:
    code, out = invoke("check", str(repo))
    assert code == 0
    assert out.splitlines() == [
        "ok",
        'run "build": 3 tasks, 3 levels',
        'run "nightly": 1 task, 1 level, when branch nightly',
    ]


def test_check_defaults_to_the_current_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    code, out = invoke("check")
    assert code == 0 and out.startswith("ok\n")


def test_check_reports_every_error_with_its_location(tmp_path: Path) -> None:
    file = tmp_path / "config.yml"
    file.write_text(BROKEN)
    code, out = invoke("check", str(file))
    assert code == 1
    lines = out.splitlines()
    # Sorted by location, whatever order the checks found them in.
    assert lines[0].startswith(f"{file}:6:19: runs[0].tasks[0].depends[0]: run task \"missing\" needed by task \"a\"")
    assert lines[1] == (
        f"{file}:7:9: runs[0].tasks[1]: task \"b\": runtime is not defined "
        "(add `runtime: {containers: [{image: ...}]}`)"
    )
    assert lines[2] == "Error: 2 errors in the pipeline file"


def test_check_shows_warnings_with_errors_and_names_a_tab(tmp_path: Path) -> None:
    file = tmp_path / "config.yml"
    file.write_text(BROKEN.replace("name: a\n", "name: a\n        comand: x\n", 1))
    code, out = invoke("check", str(file))
    assert code == 1
    assert any(line.startswith("warning: ") and 'unknown key "comand"' in line for line in out.splitlines())
    file.write_text("runs:\n  - name: r\n\ttasks: []\n")
    code, out = invoke("check", str(file))
    assert code == 1 and f"{file}:3:1: " in out and "tab character" in out


def test_check_without_pipeline_file(tmp_path: Path) -> None:
    code, out = invoke("check", str(tmp_path))
    assert code == 1
    assert "no pipeline file found" in out


def test_check_evaluates_jsonnet_for_the_given_ref(tmp_path: Path) -> None:
    file = tmp_path / "config.jsonnet"
    file.write_text(
        "function(ctx) if ctx.ref_type == 'tag' then {runs: [{name: 'release-' + ctx.tag, "
        "tasks: [{name: 't', runtime: {containers: [{image: 'b'}]}}]}]} else {}"
    )
    code, out = invoke("check", str(file), "--tag", "v1.0")
    assert (code, out.splitlines()) == (0, ["ok", 'run "release-v1.0": 1 task, 1 level'])
    code, out = invoke("check", str(file), "--branch", "master")
    assert code == 1
    assert "no runs defined" in out


def test_show_prints_the_dag(repo: Path) -> None:
    code, out = invoke("show", str(repo))
    assert code == 0
    assert out.splitlines() == [
        'run "build"',
        "  level 0",
        "    checkout",
        "      - clone: Clone repository and checkout code",
        "      - run: make",
        "  level 1",
        "    test  <- checkout (on_success)  [timeout 10m]",
        "  level 2",
        "    deploy  <- test (on_success|on_failure)  [skipped: when does not match; needs approval]",
        'run "nightly": not created: when (branch nightly) does not match branch master',
    ]


def test_show_for_a_tag_and_a_branch(repo: Path) -> None:
    code, out = invoke("show", str(repo), "--tag", "v2")
    assert code == 0
    assert "    deploy  <- test (on_success|on_failure)  [needs approval]" in out
    assert 'run "nightly": not created: when (branch nightly) does not match tag v2' in out
    code, out = invoke("show", str(repo), "--branch", "nightly")
    assert 'run "nightly"\n  level 0\n    x\n' in out


def test_show_json_resolves_variables(repo: Path) -> None:
    code, out = invoke("show", str(repo), "--json", "--var", "token=s3cret", "--var", "other=x=y")
    assert code == 0
    runs = json.loads(out)
    assert [r["name"] for r in runs] == ["build"]
    tasks = {t["name"]: t for t in runs[0]["tasks"].values()}
    assert tasks["test"]["environment"] == {"TOKEN": "s3cret"}
    assert tasks["test"]["task_timeout_interval"] == 600 * 10**9
    assert tasks["deploy"]["skip"] is True and tasks["deploy"]["needs_approval"] is True
    assert tasks["checkout"]["steps"][0] == {"type": "clone", "name": "Clone repository and checkout code"}
    assert list(tasks["deploy"]["depends"].values()) == [
        {"task_id": tasks["test"]["id"], "conditions": ["on_success", "on_failure"]}
    ]
    # Ids are stable between two previews of the same file.
    assert json.loads(invoke("show", str(repo), "--json")[1])[0]["tasks"].keys() == runs[0]["tasks"].keys()


def test_show_honours_ci_skip(repo: Path) -> None:
    code, out = invoke("show", str(repo), "--message", "wip [ci skip]")
    assert code == 0
    assert out.splitlines() == [
        'run "build": not created: commit message contains [ci skip]',
        'run "nightly": not created: commit message contains [ci skip]',
    ]


def test_show_refuses_bad_options(repo: Path) -> None:
    result = CliRunner().invoke(pipeline, ["show", str(repo), "--branch", "a", "--tag", "b"])
    assert result.exit_code == 2 and "only one of --branch, --tag or --ref" in result.output
    result = CliRunner().invoke(pipeline, ["show", str(repo), "--var", "novalue"])
    assert result.exit_code == 2 and "is not NAME=VALUE" in result.output
    result = CliRunner().invoke(pipeline, ["show", str(repo), "--ref", "main"])
    assert result.exit_code == 2 and "unsupported ref" in result.output


def test_show_pull_request_ref(repo: Path) -> None:
    code, out = invoke("show", str(repo), "--ref", "refs/pull/3/head")
    assert code == 0
    assert "skipped: when does not match" in out
    assert 'run "nightly": not created: when (branch nightly) does not match ref refs/pull/3/head' in out


def test_check_shows_warnings_for_ignored_keys(tmp_path: Path) -> None:
    file = tmp_path / "config.yml"
    file.write_text(PIPELINE.replace("        depends: [checkout]\n", "        depend: [checkout]\n"))
    code, out = invoke("check", str(file))
    assert code == 0
    assert out.splitlines()[-1] == (
        f'warning: {file}:9:17: runs[0].tasks[1].depend: unknown key "depend" in task (ignored) '
        '(did you mean "depends"?)'
    )
