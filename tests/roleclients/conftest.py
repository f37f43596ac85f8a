"""Fixtures of the role tests the client tests reuse: a real gitserver and a work tree to push."""

from __future__ import annotations

from tests.gitserver.conftest import gitserver, worktree

__all__ = ["gitserver", "worktree"]
