"""Safe archives: what a task (or a tampered store) puts in a tar never lands outside the destination."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.util import tarsafe


def make_tar(*entries: tuple[str, str, str | bytes]) -> bytes:
    """Entries: (kind, name, data-or-linkname) with kind in file/dir/sym/hard/chr/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                raw = data.encode() if isinstance(data, str) else data
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(data)
            if kind == "dir":
                info.mode = 0o755
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    "entries, bad_entry",
    [
        ([("file", "../x", "evil")], "../x"),
        ([("file", "/etc/x", "evil")], "/etc/x"),
        ([("file", "a/../../x", "evil")], "a/../../x"),
        ([("sym", "link", "/etc"), ("file", "link/passwd", "evil")], "link"),
        ([("sym", "up", "../.."), ("file", "up/x", "evil")], "up"),
        ([("sym", "inside", "sub"), ("dir", "sub", ""), ("file", "inside/x", "evil")], "inside/x"),
        ([("hard", "h", "/etc/passwd")], "h"),
        ([("hard", "h", "../outside")], "h"),
        ([("chr", "dev", "")], "dev"),
        ([("fifo", "pipe", "")], "pipe"),
    ],
)
def test_extract_rejects_unsafe_entries_and_names_them(tmp_path: Path, entries, bad_entry) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(tarsafe.UnsafeArchive) as err:
        tarsafe.extract(io.BytesIO(make_tar(*entries)), dest)
    assert err.value.entry == bad_entry
    assert repr(bad_entry) in str(err.value)
    # Nothing was written outside the destination.
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_extract_refuses_to_write_through_an_existing_symlink(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "link")  # left by a previous extraction or by the task itself
    with pytest.raises(tarsafe.UnsafeArchive, match="symbolic link"):
        tarsafe.extract(io.BytesIO(make_tar(("file", "link/x", "evil"))), dest)
    assert list(outside.iterdir()) == []


def test_extract_replaces_a_symlink_with_a_file_instead_of_following_it(tmp_path: Path) -> None:
    dest, target = tmp_path / "dest", tmp_path / "target"
    dest.mkdir()
    target.write_text("keep")
    os.symlink(target, dest / "f")
    tarsafe.extract(io.BytesIO(make_tar(("file", "f", "new"))), dest)
    assert target.read_text() == "keep"
    assert (dest / "f").read_text() == "new" and not (dest / "f").is_symlink()


def test_extract_safe_archive_with_links_and_modes(tmp_path: Path) -> None:
    data = make_tar(
        ("dir", "./", ""), ("dir", "a", ""), ("file", "a/f.txt", "hello"), ("sym", "a/l", "f.txt"),
        ("hard", "a/h", "a/f.txt"), ("sym", "top", "a/f.txt"),
    )
    assert tarsafe.extract(io.BytesIO(data), tmp_path / "d") == 5
    assert (tmp_path / "d/a/f.txt").read_text() == "hello"
    assert os.readlink(tmp_path / "d/a/l") == "f.txt"
    assert (tmp_path / "d/a/h").read_text() == "hello"
    assert (tmp_path / "d/top").read_text() == "hello"


def test_extract_without_overwrite_reports_existing_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("old")
    with pytest.raises(tarsafe.UnsafeArchive, match="already exists"):
        tarsafe.extract(io.BytesIO(make_tar(("file", "f", "new"))), tmp_path, overwrite=False)
    assert (tmp_path / "f").read_text() == "old"


def test_setuid_bits_are_dropped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("suid")
        info.mode, info.size = 0o4755, 1
        tar.addfile(info, io.BytesIO(b"x"))
    tarsafe.extract(io.BytesIO(buf.getvalue()), tmp_path)
    assert os.stat(tmp_path / "suid").st_mode & 0o7777 == 0o755


def test_filter_renames_drops_and_checks(tmp_path: Path) -> None:
    data = make_tar(("dir", "src", ""), ("file", "src/a.txt", "A"), ("file", "src/b.log", "B"), ("sym", "src/l", "a.txt"))
    out = io.BytesIO()

    def rename(name: str, member: tarfile.TarInfo) -> str | None:
        return None if name.endswith(".log") or name == "src" else "dest/" + name.partition("/")[2]

    assert tarsafe.filter_archive(io.BytesIO(data), out, rename) == 2
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert names == ["dest/a.txt", "dest/l"]
    with pytest.raises(tarsafe.UnsafeArchive):
        tarsafe.filter_archive(io.BytesIO(make_tar(("file", "../x", "e"))), io.BytesIO())


def test_writer_rejects_duplicate_destinations(tmp_path: Path) -> None:
    with tarsafe.ArchiveWriter(io.BytesIO()) as writer:
        writer.copy_from(io.BytesIO(make_tar(("dir", "d", ""), ("file", "d/x", "1"))))
        writer.copy_from(io.BytesIO(make_tar(("dir", "d", ""))))  # directories merge
        with pytest.raises(tarsafe.UnsafeArchive, match="duplicate"):
            writer.copy_from(io.BytesIO(make_tar(("file", "d/x", "2"))))


async def test_extract_async_streams_chunks(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    data = make_tar(("file", "big.bin", payload))
    pulled = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            pulled.append(i)
            yield data[i : i + 65536]

    assert await tarsafe.extract_async(chunks(), tmp_path) == 1
    assert (tmp_path / "big.bin").read_bytes() == payload
    assert len(pulled) > 40  # consumed chunk by chunk, not as one blob


def test_create_keeps_links_as_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.symlink("/etc/passwd", src / "l")
    out = io.BytesIO()
    tarsafe.create(src, out, arc_prefix="src")
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))}
    assert members["src/l"].issym() and members["src/l"].linkname == "/etc/passwd"
    assert members["src"].isdir()


def test_external_links_are_kept_as_links_but_never_traversed(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    data = make_tar(("sym", "py", "/usr/bin/python3"), ("sym", "up", str(outside)), ("file", "f", "x"))
    assert tarsafe.extract(io.BytesIO(data), dest, external_links=True) == 3
    assert os.readlink(dest / "py") == "/usr/bin/python3"
    # Still nothing goes through a link: from the same archive, or one already on disk.
    with pytest.raises(tarsafe.UnsafeArchive, match="symbolic link"):
        tarsafe.extract(io.BytesIO(make_tar(("sym", "l", "/etc"), ("file", "l/x", "e"))), tmp_path / "d2", external_links=True)
    with pytest.raises(tarsafe.UnsafeArchive, match="symbolic link"):
        tarsafe.extract(io.BytesIO(make_tar(("file", "up/x", "e"))), dest, external_links=True)
    assert list(outside.iterdir()) == []
    with pytest.raises(tarsafe.UnsafeArchive):
        tarsafe.extract(io.BytesIO(make_tar(("file", "../x", "e"))), dest, external_links=True)
