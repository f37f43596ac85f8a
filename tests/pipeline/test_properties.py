"""Property tests: `when` matching and DAG levels hold their rules for any input."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agola.pipeline import RunContext, generate_run
from agola.pipeline.dag import CycleError, all_ancestors, levels
from agola.pipeline.schema import (
    Container,
    Depend,
    PipelineConfig,
    Run,
    Runtime,
    Task,
    When,
    WhenCondition,
    WhenConditions,
    WhenConditionType,
)
from agola.pipeline.when import match_when

# The machine running the suite may be busy: judge properties, not per-example speed.
PROFILE = settings(deadline=None, max_examples=60)

# Ref names: no newlines (git forbids them), a small alphabet so collisions happen often.
names = st.text(alphabet="abm/-._1", min_size=1, max_size=8)


def simple(value: str) -> WhenCondition:
    return WhenCondition(WhenConditionType.SIMPLE, value)


def exact_regexp(value: str) -> WhenCondition:
    return WhenCondition(WhenConditionType.REGEXP, "^" + re.escape(value) + "$")


conditions = st.lists(
    st.one_of(names.map(simple), names.map(exact_regexp), st.just(WhenCondition(WhenConditionType.REGEXP, "."))),
    max_size=3,
)
cond_sets = st.builds(
    lambda inc, exc: WhenConditions(tuple(inc), tuple(exc)), conditions, conditions
)
whens = st.builds(
    When,
    branch=st.one_of(st.none(), cond_sets),
    tag=st.one_of(st.none(), cond_sets),
    ref=st.one_of(st.none(), cond_sets),
)
contexts = st.one_of(
    names.map(RunContext.for_branch),
    names.map(RunContext.for_tag),
    st.integers(1, 99).map(lambda n: RunContext.for_pull_request(str(n))),
)


def matches(when: When | None, ctx: RunContext) -> bool:
    return match_when(when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref)


@PROFILE
@given(contexts)
def test_no_when_matches_everything(ctx: RunContext) -> None:
    assert matches(None, ctx)


@PROFILE
@given(names, names)
def test_simple_and_anchored_regexp_agree(value: str, branch: str) -> None:
    ctx = RunContext.for_branch(branch)
    by_simple = matches(When(branch=WhenConditions(include=(simple(value),))), ctx)
    by_regexp = matches(When(branch=WhenConditions(include=(exact_regexp(value),))), ctx)
    assert by_simple == by_regexp == (value == branch)


@PROFILE
@given(whens, contexts, conditions)
def test_more_includes_never_unmatch(when: When, ctx: RunContext, extra: list[WhenCondition]) -> None:
    before = matches(when, ctx)
    widened = When(
        branch=_add_include(when.branch, extra),
        tag=_add_include(when.tag, extra),
        ref=_add_include(when.ref, extra),
    )
    if before:
        assert matches(widened, ctx)


def _add_include(conds: WhenConditions | None, extra: list[WhenCondition]) -> WhenConditions | None:
    if conds is None:
        return None
    return WhenConditions(conds.include + tuple(extra), conds.exclude)


@PROFILE
@given(whens, contexts)
def test_excluded_ref_never_matches(when: When, ctx: RunContext) -> None:
    excluded = When(
        branch=when.branch,
        tag=when.tag,
        ref=WhenConditions((when.ref.include if when.ref else ()), (simple(ctx.ref),)),
    )
    assert not matches(excluded, ctx)


@PROFILE
@given(whens, st.integers(1, 99))
def test_pull_requests_only_see_ref_conditions(when: When, pr: int) -> None:
    ctx = RunContext.for_pull_request(str(pr))
    assert matches(when, ctx) == matches(When(ref=when.ref), ctx)


@PROFILE
@given(whens, contexts)
def test_condition_order_does_not_matter(when: When, ctx: RunContext) -> None:
    def reverse(c: WhenConditions | None) -> WhenConditions | None:
        return None if c is None else WhenConditions(c.include[::-1], c.exclude[::-1])

    assert matches(when, ctx) == matches(When(reverse(when.branch), reverse(when.tag), reverse(when.ref)), ctx)


@PROFILE
@given(cond_sets, contexts)
def test_exclude_only_never_matches_without_ref(conds: WhenConditions, ctx: RunContext) -> None:
    only_excludes = WhenConditions((), conds.exclude)
    assert not matches(When(branch=only_excludes, tag=only_excludes), ctx)


# -- DAG levels ------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random acyclic graphs: a task may only depend on tasks drawn before it."""
    size = draw(st.integers(1, 12))
    graph: dict[str, list[str]] = {}
    for i in range(size):
        parents = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        graph[f"t{i}"] = [f"t{p}" for p in parents]
    # Present them in a shuffled order: levels must not depend on declaration order.
    order = draw(st.permutations(list(graph)))
    return {name: graph[name] for name in order}


@PROFILE
@given(dags())
def test_levels_follow_the_longest_path(graph: dict[str, list[str]]) -> None:
    level = levels(graph)
    for task, parents in graph.items():
        assert level[task] == (1 + max(level[p] for p in parents) if parents else 0)
    assert set(level.values()) == set(range(max(level.values()) + 1))


@PROFILE
@given(dags(), st.data())
def test_a_back_edge_is_a_cycle(graph: dict[str, list[str]], data: st.DataObject) -> None:
    task = data.draw(st.sampled_from(sorted(graph)))
    ancestors = sorted(all_ancestors(graph, task))
    if not ancestors:
        return
    ancestor = data.draw(st.sampled_from(ancestors))
    cyclic = {k: list(v) for k, v in graph.items()}
    cyclic[ancestor].append(task)
    assert ancestor in all_ancestors(cyclic, ancestor)
    try:
        levels(cyclic)
    except CycleError:
        return
    raise AssertionError("cycle not detected")


@settings(PROFILE, max_examples=50)
@given(dags())
def test_generated_run_levels_match_the_graph(graph: dict[str, list[str]]) -> None:
    runtime = Runtime(containers=(Container(image="busybox"),))
    tasks = tuple(
        Task(name=name, runtime=runtime, depends=tuple(Depend(p) for p in parents))
        for name, parents in graph.items()
    )
    config = PipelineConfig(runs=(Run(name="r", tasks=tasks),))
    run = generate_run(config, config.runs[0], RunContext(), {}, lambda name: "id-" + name)
    expected = levels(graph)
    assert {t.name: t.level for t in run.tasks.values()} == expected
    for task in run.tasks.values():
        for dep in task.depends.values():
            assert run.tasks[dep.task_id].level < task.level
    assert [t.level for t in run.tasks.values()] == sorted(expected.values())
