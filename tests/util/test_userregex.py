"""User regexps run on RE2: catastrophic patterns return at once with the right answer, patterns RE2
refuses are typed errors in Go's words, and every place that takes a user's regexp uses it."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest
from agola.pipeline import PipelineError, RunContext, generate_run_configs, load_pipeline
from agola.services.executor.steps import glob_to_regex
from agola.services.gateway.actions.createrun import UserCreateRunRequest, resolve_ref
from agola.util.userregex import UserRegexError, compile_user_regex

# Each of these takes exponential (or high polynomial) time in Python's backtracking engine on
# the subjects below: seconds at 27 characters, doubling with each one. With RE2: microseconds.
CATASTROPHIC = [  # (pattern, a subject it does not match, one it matches)
    ("(a+)+b", "a" * 40, "a" * 40 + "b"),
    ("(a|aa)+$", "a" * 40 + "!", "!" + "a" * 40),
    ("(a|a)*c", "a" * 40, "a" * 40 + "c"),
    ("^(\\w+\\s?)*$", "word " * 10 + "!", "word " * 10),
    ("(.*a){20}", "a" * 19 + "b" * 30, "a" * 20 + "b" * 30),
]


@pytest.mark.parametrize(("pattern", "miss", "hit"), CATASTROPHIC)
def test_catastrophic_patterns_return_the_right_answer(pattern: str, miss: str, hit: str) -> None:
    regex = compile_user_regex(pattern)
    assert regex.search(miss) is None
    assert regex.search(hit) is not None


@pytest.mark.parametrize(("pattern", "message"), [
    ("(abc", "error parsing regexp: missing closing ): `(abc`"),
    ("abc)", "error parsing regexp: unexpected ): `abc)`"),
    ("[a-", "error parsing regexp: missing closing ]: `[a-`"),
    ("(a)\\1", "error parsing regexp: invalid escape sequence: `\\1`"),
    ("ma(?=ster)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ("(?<!x)y", "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`"),
    ("a**", "error parsing regexp: invalid nested repetition operator: `**`"),
    ("*a", "error parsing regexp: missing argument to repetition operator: `*`"),
    ("a{3,2}", "error parsing regexp: invalid repeat count: `{3,2}`"),
    ("a\\", "error parsing regexp: trailing backslash at end of expression: ``"),
])
def test_refused_patterns_are_typed_errors_in_gos_words(pattern: str, message: str) -> None:
    with pytest.raises(UserRegexError) as err:
        compile_user_regex(pattern)
    assert str(err.value) == message
    assert err.value.pattern == pattern and err.value.code == "bad_request"  # a 400 wherever it surfaces


def test_re2_syntax_that_python_lacks_works() -> None:
    assert compile_user_regex("^[[:alpha:]]+\\z").search("release") is not None
    assert compile_user_regex("^[[:alpha:]]+\\z").search("release\n") is None
    assert compile_user_regex("\\pL+").fullmatch("café") is not None


PIPELINE = b"""
runs:
  - name: guarded
    when: {branch: "/(a+)+b/"}
    tasks:
      - name: t
        runtime: {containers: [{image: busybox}]}
        steps: [{run: "true"}]
"""


def test_a_catastrophic_when_on_a_long_branch_is_decided_at_once() -> None:
    for branch, runs in (("a" * 40, []), ("a" * 40 + "b", ["guarded"])):
        ctx = RunContext.for_branch(branch)
        config = load_pipeline({".agola/config.yml": PIPELINE}, ctx)
        assert [r.name for r in generate_run_configs(config, ctx)] == runs


def test_a_back_reference_in_a_when_is_a_located_error() -> None:
    text = PIPELINE.replace(b"/(a+)+b/", b"/(a)\\\\1/")
    with pytest.raises(PipelineError) as err:
        load_pipeline({".agola/config.yml": text}, RunContext.for_branch("master"))
    (located,) = err.value.errors
    assert located.path == "runs[0].when.branch" and (located.line, located.column) == (4, 20)
    assert located.message == "wrong regular expression: error parsing regexp: invalid escape sequence: `\\1`"


def test_pull_request_ref_regexps_of_a_run_creation_use_re2() -> None:
    slow = "refs/pull/(a+)+b/(\\d+)"
    ref = "refs/pull/" + "a" * 40 + "/head"
    with pytest.raises(BadRequest, match="is not a branch, a tag or a pull request ref"):
        resolve_ref(UserCreateRunRequest(ref=ref, pull_request_ref_regexes=(slow,)))
    with pytest.raises(BadRequest) as err:
        resolve_ref(UserCreateRunRequest(ref="refs/pull/1/head", pull_request_ref_regexes=("(a)\\1",)))
    assert "wrong pull request ref regexp '(a)\\\\1': error parsing regexp: invalid escape sequence" in str(err.value)


def test_globs_of_a_pipeline_use_re2() -> None:
    regex = glob_to_regex("**/" * 30 + "x")
    assert regex.match("a/" * 60 + "y") is None
    assert regex.match("a/" * 60 + "x") is not None
