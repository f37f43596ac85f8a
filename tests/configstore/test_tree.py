"""Secrets and variables along the tree: listing order, overriding and a run's variables."""

from __future__ import annotations

import pytest

from agola.pipeline.when import match_when
from agola.services.configstore.tree import (
    RunRef,
    remove_overridden,
    resolve_variables,
    run_variables,
    tree_list,
)
from agola.types.configstore import (
    Parent,
    Project,
    Secret,
    SecretResponse,
    Variable,
    VariableResponse,
    VariableValue,
    When,
    WhenCondition,
    WhenConditions,
)

ROOT = "org/org01"
GROUP = "org/org01/group01"
PROJECT = "org/org01/group01/project01"


def secret(name: str, parent_path: str, **data: str) -> SecretResponse:
    return SecretResponse(Secret(id=f"{parent_path}:{name}", name=name, type="internal", data=data), parent_path)


def variable(name: str, parent_path: str, *values: VariableValue) -> VariableResponse:
    return VariableResponse(Variable(id=f"{parent_path}:{name}", name=name, values=list(values)), parent_path)


def cond(*matches: str) -> WhenConditions:
    conds = []
    for m in matches:
        if len(m) > 2 and m[0] == m[-1] == "/":
            conds.append(WhenCondition("regexp", m[1:-1]))
        else:
            conds.append(WhenCondition("simple", m))
    return WhenConditions(include=conds)


def branches(*matches: str, exclude: tuple[str, ...] = ()) -> When:
    c = cond(*matches)
    return When(branch=WhenConditions(include=c.include, exclude=cond(*exclude).include))


MASTER = RunRef("branch", "refs/heads/master", branch="master")
FEATURE = RunRef("branch", "refs/heads/feature-1", branch="feature-1")
TAG = RunRef("tag", "refs/tags/v1.0", tag="v1.0")
PR_SAME = RunRef("pull_request", "refs/pull/1/head", pull_request_from_same_repo=True)
PR_FORK = RunRef("pull_request", "refs/pull/2/head", pull_request_from_same_repo=False)


@pytest.mark.parametrize(
    "when,run,expected",
    [
        (None, MASTER, True),
        (None, PR_FORK, True),
        (branches("master"), MASTER, True),
        (branches("master"), FEATURE, False),
        (branches("/feature-.*/"), FEATURE, True),
        (branches("/^feat/"), FEATURE, True),
        (branches("/ture/"), FEATURE, True),  # unanchored search
        (branches("/.*/", exclude=("master",)), MASTER, False),
        (branches("/.*/", exclude=("master",)), FEATURE, True),
        (branches("master"), TAG, False),  # branch conditions never match tag runs
        (When(tag=cond("/^v/")), TAG, True),
        (When(tag=cond("/^v/")), MASTER, False),
        (branches("master"), PR_SAME, False),  # only ref conditions can match pull requests
        (When(ref=cond("/refs/pull/.*/")), PR_SAME, True),
        (When(ref=cond("refs/heads/master")), MASTER, True),
        (When(branch=cond("master"), ref=WhenConditions(exclude=cond("refs/heads/master").include)), MASTER, False),
        (When(), MASTER, False),  # a when with no condition matches nothing
    ],
)
def test_match_when(when: When | None, run: RunRef, expected: bool) -> None:
    assert match_when(when, run.ref_type, run.branch, run.tag, run.ref) is expected


def test_tree_listing_nearest_first_and_remove_overridden() -> None:
    own = [secret("s1", PROJECT, k="project"), secret("s2", PROJECT, k="p2")]
    group = [secret("s1", GROUP, k="group"), secret("s3", GROUP, k="g3")]
    root = [secret("s3", ROOT, k="root"), secret("s4", ROOT, k="r4")]
    listed = tree_list([own, group, root])
    assert [(s.secret.name, s.parent_path) for s in listed] == [
        ("s1", PROJECT), ("s2", PROJECT), ("s1", GROUP), ("s3", GROUP), ("s3", ROOT), ("s4", ROOT),
    ]
    kept = remove_overridden(listed)
    assert [(s.secret.name, s.parent_path) for s in kept] == [
        ("s1", PROJECT), ("s2", PROJECT), ("s3", GROUP), ("s4", ROOT),
    ]


# Each case: variables tree, secrets tree (both nearest first), run, expected variables.
CASES = [
    pytest.param(
        [variable("v", PROJECT, VariableValue("s", "k"))],
        [secret("s", PROJECT, k="val")],
        MASTER, {"v": "val"}, id="same-level",
    ),
    pytest.param(
        [variable("v", PROJECT, VariableValue("s", "k"))],
        [secret("s", GROUP, k="from-group")],
        MASTER, {"v": "from-group"}, id="secret-above-variable",
    ),
    pytest.param(
        [variable("v", GROUP, VariableValue("s", "k"))],
        [secret("s", PROJECT, k="below"), secret("s", ROOT, k="above")],
        MASTER, {"v": "above"}, id="secret-below-variable-is-never-used",
    ),
    pytest.param(
        [variable("v", GROUP, VariableValue("s", "k"))],
        [secret("s", PROJECT, k="below")],
        MASTER, {}, id="only-secret-below-gives-nothing",
    ),
    pytest.param(
        [variable("v", PROJECT, VariableValue("s", "k"))],
        [secret("s", PROJECT, k="near"), secret("s", GROUP, k="far")],
        MASTER, {"v": "near"}, id="nearest-secret-wins",
    ),
    pytest.param(
        [variable("v", PROJECT, VariableValue("s", "k")), variable("v", GROUP, VariableValue("s", "other"))],
        [secret("s", PROJECT, k="near", other="far")],
        MASTER, {"v": "near"}, id="nearest-variable-overrides",
    ),
    pytest.param(
        [variable("v", PROJECT,
                  VariableValue("prod", "k", branches("master")),
                  VariableValue("dev", "k"))],
        [secret("prod", GROUP, k="prod-value"), secret("dev", GROUP, k="dev-value")],
        MASTER, {"v": "prod-value"}, id="first-matching-when-master",
    ),
    pytest.param(
        [variable("v", PROJECT,
                  VariableValue("prod", "k", branches("master")),
                  VariableValue("dev", "k"))],
        [secret("prod", GROUP, k="prod-value"), secret("dev", GROUP, k="dev-value")],
        FEATURE, {"v": "dev-value"}, id="first-matching-when-feature",
    ),
    pytest.param(
        [variable("v", PROJECT,
                  VariableValue("prod", "k", When(tag=cond("/^v/"))),
                  VariableValue("dev", "k", branches("master")))],
        [secret("prod", ROOT, k="release"), secret("dev", ROOT, k="dev")],
        TAG, {"v": "release"}, id="tag-when",
    ),
    pytest.param(
        [variable("v", PROJECT, VariableValue("prod", "k", branches("master")))],
        [secret("prod", ROOT, k="x")],
        FEATURE, {}, id="no-matching-value",
    ),
    pytest.param(
        [variable("v", PROJECT,
                  VariableValue("missing", "k"),
                  VariableValue("dev", "k"))],
        [secret("dev", ROOT, k="dev")],
        MASTER, {}, id="first-match-wins-even-if-its-secret-is-missing",
    ),
    pytest.param(
        [variable("v", PROJECT, VariableValue("s", "nokey"))],
        [secret("s", ROOT, k="x")],
        MASTER, {}, id="missing-secret-key",
    ),
    pytest.param(
        [variable("v", "org/org01/group0", VariableValue("s", "k"))],
        [secret("s", "org/org01/group01", k="sibling-prefix")],
        MASTER, {}, id="path-prefix-is-not-ancestor",
    ),
    pytest.param(
        [variable("a", PROJECT, VariableValue("s", "a")), variable("b", ROOT, VariableValue("s", "b"))],
        [secret("s", PROJECT, a="A", b="B-project"), secret("s", ROOT, b="B-root")],
        MASTER, {"a": "A", "b": "B-root"}, id="each-variable-sees-secrets-from-its-own-level",
    ),
]


@pytest.mark.parametrize("variables,secrets,run,expected", CASES)
def test_resolve_variables(
    variables: list[VariableResponse], secrets: list[SecretResponse], run: RunRef, expected: dict[str, str]
) -> None:
    assert resolve_variables(variables, secrets, run) == expected


@pytest.mark.parametrize(
    "run,allow_forks,expected",
    [
        (MASTER, False, {"v": "val"}),
        (PR_SAME, False, {"v": "val"}),
        (PR_FORK, False, {}),
        (PR_FORK, True, {"v": "val"}),
    ],
)
def test_forked_pull_requests_get_no_variables_unless_allowed(
    run: RunRef, allow_forks: bool, expected: dict[str, str]
) -> None:
    project = Project(id="p", name="project01", parent=Parent("projectgroup", "g"), pass_vars_to_forked_pr=allow_forks)
    variables = [variable("v", PROJECT, VariableValue("s", "k"))]
    secrets = [secret("s", PROJECT, k="val")]
    assert run_variables(project, variables, secrets, run) == expected
