"""The one step-query parser (``?setup``/``?step=N``/``&follow``) and its encoder."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest
from agola.types.stepquery import StepQuery, parse_archive_step, parse_log_query
from tests.support.stepquery import ARCHIVE_QUERIES, LOG_QUERIES, Query


@pytest.mark.parametrize("query, expected", LOG_QUERIES)
def test_log_queries(query: Query, expected: StepQuery | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(BadRequest, match=expected):
            parse_log_query(query)
    else:
        assert parse_log_query(query) == expected
        assert parse_log_query(expected.params()) == expected  # what clients send parses back


@pytest.mark.parametrize("query, expected", ARCHIVE_QUERIES)
def test_archive_queries(query: Query, expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(BadRequest, match=expected):
            parse_archive_step(query)
    else:
        assert parse_archive_step(query) == expected


def test_of_a_step_or_the_setup() -> None:
    assert StepQuery.of(None).params() == {"setup": ""}
    assert StepQuery.of(4, follow=True).params() == {"step": "4", "follow": ""}
