"""The corpus: real pipeline files, valid and invalid, each carrying its expected outcome."""

from __future__ import annotations

import itertools

import pytest

from agola.pipeline import GeneratedRun, LocatedError, PipelineError, generate_run_configs, parse_pipeline
from tests.pipeline.corpus_runner import Case, ExpectedError, corpus_files, load_case

CASES = [load_case(f) for f in corpus_files()]


def test_corpus_is_large_and_covers_every_format() -> None:
    assert len(CASES) >= 80
    suffixes = {c.file.suffix for c in CASES}
    assert suffixes == {".yml", ".yaml", ".json", ".jsonnet", ".star"}
    assert sum(1 for c in CASES if c.errors) >= 40
    assert sum(1 for c in CASES if not c.errors) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_corpus_file(case: Case) -> None:
    data = case.file.read_bytes()
    if case.errors:
        with pytest.raises(PipelineError) as info:
            parse_pipeline(case.file.name, data, case.ctx)
        _assert_errors(case, info.value)
        return
    config = parse_pipeline(case.file.name, data, case.ctx)
    _assert_located(case, case.warnings, list(config.warnings))
    counter = itertools.count()
    runs = generate_run_configs(
        config, case.ctx, case.message, case.variables, lambda name: f"{name}#{next(counter)}"
    )
    for directive, value in case.checks:
        CHECKS[directive](runs, value)


def _assert_errors(case: Case, error: PipelineError) -> None:
    _assert_located(case, case.errors, error.errors)
    # The error a caller sees (HTTP 400 body) carries all of them.
    assert error.status == 400
    assert len(error.details) == len(case.errors)


def _assert_located(case: Case, expected_list: list[ExpectedError], got: list[LocatedError]) -> None:
    assert len(got) == len(expected_list), "\n".join(str(e) for e in got)
    for expected, actual in zip(expected_list, got):
        assert actual.file == case.file.name
        assert actual.path == expected.path, str(actual)
        assert expected.text in str(actual), str(actual)
        if expected.line is not None:
            assert (actual.line, actual.column) == (expected.line, expected.column), str(actual)


def _run(runs: list[GeneratedRun], name: str) -> GeneratedRun:
    for run in runs:
        if run.name == name:
            return run
    raise AssertionError(f"run {name!r} not generated; got {[r.name for r in runs]}")


def _target(runs: list[GeneratedRun], value: str):
    where, _, rest = value.partition(": ")
    run_name, _, task_name = where.partition("/")
    return _run(runs, run_name).task_by_name(task_name), rest.strip()


def _check_runs(runs: list[GeneratedRun], value: str) -> None:
    expected = [n for n in value.split(",") if n]
    assert [r.name for r in runs] == expected


def _check_levels(runs: list[GeneratedRun], value: str) -> None:
    run_name, _, rest = value.partition(": ")
    run = _run(runs, run_name)
    expected = dict(item.split("=") for item in rest.split())
    assert {t.name: str(t.level) for t in run.tasks.values()} == expected
    levels = [t.level for t in run.tasks.values()]
    assert levels == sorted(levels), "tasks are ordered by level"


def _check_skip(runs: list[GeneratedRun], value: str) -> None:
    run_name, _, rest = value.partition(": ")
    run = _run(runs, run_name)
    assert sorted(t.name for t in run.tasks.values() if t.skip) == sorted(rest.split(","))


def _check_steps(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    assert [s.type for s in task.steps] == rest.split(",")
    assert [s["type"] for s in task.to_json()["steps"]] == rest.split(",")


def _check_env(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    assert task.environment == dict(item.split("=", 1) for item in rest.split(","))


def _check_shell(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    assert task.shell == rest


def _check_depends(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    run = next(r for r in runs if task.id in r.tasks)
    names = {t.id: t.name for t in run.tasks.values()}
    got = {names[d.task_id]: "+".join(d.conditions) for d in task.depends.values()}
    assert got == dict(item.split("=") for item in rest.split())
    assert set(task.to_json()["depends"]) == set(task.depends)


def _check_auth(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    got = {k: f"{a.username}:{a.password}" for k, a in task.docker_registries_auth.items()}
    assert got == dict(item.split("=", 1) for item in rest.split())


def _check_timeout(runs: list[GeneratedRun], value: str) -> None:
    task, rest = _target(runs, value)
    # nanoseconds on the wire, 0 = no timeout (the key is then left out)
    assert task.to_json().get("task_timeout_interval", 0) == int(rest)


CHECKS = {
    "runs": _check_runs,
    "levels": _check_levels,
    "skip": _check_skip,
    "steps": _check_steps,
    "env": _check_env,
    "shell": _check_shell,
    "depends": _check_depends,
    "auth": _check_auth,
    "timeout": _check_timeout,
}
