"""Workspace/cache path globs (doublestar semantics) and the renaming under dest_dir."""

from __future__ import annotations

import tarfile

import pytest

from agola.services.executor.steps import glob_to_regex, workspace_rename


@pytest.mark.parametrize(
    "pattern, matches, misses",
    [
        ("**", ["a", "a/b/c"], []),
        ("*.txt", ["a.txt"], ["d/a.txt", "a.txt.bak"]),
        ("bin/*", ["bin/x"], ["bin/x/y", "bin"]),
        ("bin/**", ["bin/x", "bin/x/y"], ["binx/y"]),
        ("**/*.go", ["main.go", "a/b/c.go"], ["a/b/c.gox"]),
        ("src/**/test_?.py", ["src/test_a.py", "src/x/y/test_b.py"], ["src/test_ab.py"]),
        ("{a,b}/[0-9]", ["a/1", "b/9"], ["c/1", "a/x"]),
    ],
)
def test_doublestar_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_to_regex(pattern)
    assert all(regex.match(p) for p in matches), pattern
    assert not any(regex.match(p) for p in misses), pattern


def test_rename_drops_the_source_dir_entry_and_prefixes_dest() -> None:
    rename = workspace_rename(("**/*.md",), "/docs")
    member = tarfile.TarInfo("x")
    assert rename("src", member) is None  # the source directory itself
    assert rename("src/a/readme.md", member) == "docs/a/readme.md"
    assert rename("src/a/main.go", member) is None
    assert workspace_rename(("*",), ".")("src/f", member) == "f"
