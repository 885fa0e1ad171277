"""Baseline lines: any path bytes and values survive encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zerodrift.detect.fim.entry import (
    Entry,
    decode_entry,
    encode_entry,
    fingerprint,
    line_path,
)

names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b
)
ints = st.one_of(st.none(), st.integers(min_value=0, max_value=2**63))


# Empty strings are not recorded values: a link target or an error is never
# empty, and an empty field means "not recorded".
@settings(max_examples=60, deadline=None)
@given(
    name=names,
    kind=st.sampled_from(["file", "dir", "symlink", "char", "fifo"]),
    numbers=st.lists(ints, min_size=8, max_size=8),
    target=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    error=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    xattrs=st.one_of(
        st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=8))
    ),
)
def test_encoding_round_trips(  # noqa: PLR0917 - one argument per strategy
    name: bytes,
    kind: str,
    numbers: list[int | None],
    target: str | None,
    error: str | None,
    xattrs: dict[str, str] | None,
) -> None:
    mode, uid, gid, size, inode, nlink, mtime, ctime = numbers
    entry = Entry(
        b"/root/" + name,
        kind,
        mode,
        uid,
        gid,
        size,
        inode,
        nlink,
        mtime,
        ctime,
        hash="ab" * 32,
        target=target.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if target
        else target,
        xattrs=xattrs,
        rdev=(8, 1),
        error=error,
    )
    line = encode_entry(entry)
    assert b"\n" not in line
    assert line_path(line) == entry.path
    assert line.startswith(fingerprint(entry))
    assert decode_entry(line) == entry


def test_tabs_newlines_and_backslashes_in_names() -> None:
    entry = Entry(b"/x/a\tb\nc\\d\xff", "file", 0o644, 0, 0, 3, 9, 1, 5, 6, "00")
    line = encode_entry(entry)
    assert line.count(b"\n") == 0
    assert decode_entry(line).path == entry.path
