"""The run context a pipeline is evaluated and matched against (the commit being built)."""

from __future__ import annotations

import re
from typing import Any

import attrs

_PR_REF = re.compile(r"^refs/(?:pull|merge-requests)/(\d+)/head$")


@attrs.frozen
class RunContext:
    """What is being built. Jsonnet receives it as the top-level argument ``ctx`` and Starlark as
    ``main(ctx)`` (a dict), with exactly these keys, empty strings for what does not apply."""

    ref_type: str = "branch"  # branch | tag | pull_request
    ref: str = "refs/heads/master"
    branch: str = "master"
    tag: str = ""
    pull_request_id: str = ""
    commit_sha: str = ""

    @classmethod
    def for_branch(cls, branch: str, commit_sha: str = "") -> RunContext:
        return cls("branch", f"refs/heads/{branch}", branch, "", "", commit_sha)

    @classmethod
    def for_tag(cls, tag: str, commit_sha: str = "") -> RunContext:
        return cls("tag", f"refs/tags/{tag}", "", tag, "", commit_sha)

    @classmethod
    def for_pull_request(cls, pull_request_id: str, ref: str = "", commit_sha: str = "") -> RunContext:
        return cls("pull_request", ref or f"refs/pull/{pull_request_id}/head", "", "", pull_request_id, commit_sha)

    @classmethod
    def for_ref(cls, ref: str, commit_sha: str = "") -> RunContext:
        """From a full git ref: ``refs/heads/X``, ``refs/tags/X`` or a pull/merge request head."""
        if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
            return cls.for_branch(ref[len("refs/heads/") :], commit_sha)
        if ref.startswith("refs/tags/") and len(ref) > len("refs/tags/"):
            return cls.for_tag(ref[len("refs/tags/") :], commit_sha)
        m = _PR_REF.match(ref)
        if m:
            return cls.for_pull_request(m.group(1), ref, commit_sha)
        raise ValueError(
            f"unsupported ref {ref!r}: expected refs/heads/<branch>, refs/tags/<tag> or refs/pull/<n>/head"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ref_type": self.ref_type,
            "ref": self.ref,
            "branch": self.branch,
            "tag": self.tag,
            "pull_request_id": self.pull_request_id,
            "commit_sha": self.commit_sha,
        }
