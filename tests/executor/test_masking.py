"""Secret values never reach a step log: ``***`` instead, also when a value is split across two
writes of the pod's output or spans several lines; values under 4 characters stay as they are."""

from __future__ import annotations

from pathlib import Path

from agola.services.executor.logs import TaskLogs
from agola.services.executor.masking import StreamMasker


def _through(values: list[str], chunks: list[bytes]) -> bytes:
    masker = StreamMasker(values)
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


def test_a_value_is_masked_whole_and_everything_else_is_kept() -> None:
    assert _through(["s3cr3t-value"], [b"token=s3cr3t-value; again s3cr3t-value\n"]) == b"token=***; again ***\n"


def test_a_value_split_at_every_possible_place_is_masked() -> None:
    text = b"before hunter22 after\n"
    for cut in range(len(text) + 1):
        assert _through(["hunter22"], [text[:cut], text[cut:]]) == b"before *** after\n", cut
    assert _through(["hunter22"], [bytes([b]) for b in text]) == b"before *** after\n"


def test_multi_line_values_are_masked_whole_and_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEabcdef\n-----END KEY-----"
    out = _through([key], [f"key:\n{key}\n".encode()[:20], f"key:\n{key}\n".encode()[20:], b"line MIIEabcdef\n"])
    assert out == b"key:\n***\nline ***\n"


def test_short_values_are_not_masked_and_the_longest_value_wins() -> None:
    assert _through(["abc", "x"], [b"abc x abcd\n"]) == b"abc x abcd\n"
    assert _through(["pass", "password1"], [b"password1 pass\n"]) == b"*** ***\n"


def test_without_values_bytes_pass_at_once() -> None:
    masker = StreamMasker(["ab", ""])
    assert not masker.active and masker.feed(b"ab") == b"ab" and masker.flush() == b""


async def test_stored_and_followed_step_logs_are_masked(tmp_path: Path) -> None:
    logs = TaskLogs(tmp_path, masked_values=["topsecret-42"])
    step = logs.step(0)
    await step.write(b"the value is tops")
    await step.write(b"ecret-42!\n")
    await step.line("done")
    step.close()
    followed = b"".join([chunk async for chunk in step.follow()])
    assert followed == step.path.read_bytes() == b"the value is ***!\ndone\n"
    assert step.size == len(followed)
