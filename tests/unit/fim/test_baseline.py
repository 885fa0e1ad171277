"""The signed baseline refuses every kind of tampering, loudly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner

from zerodrift.detect.fim import baseline as baseline_module
from zerodrift.detect.fim.baseline import BaselineWriter, open_baseline
from zerodrift.detect.fim.entry import decode_entry
from zerodrift.detect.fim.monitor import create_baseline
from zerodrift.detect.fim.rules import rules_for_paths
from zerodrift.errors import IntegrityError, OperationalError, VerificationError
from zerodrift.protect.keys import (
    PublicKey,
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)

PASS = b"unit-test-passphrase"


def _keypair(folder: Path, name: str) -> tuple[CryptoSigner, PublicKey]:
    write_keypair(
        generate_private_key(), folder / f"{name}.key", folder / f"{name}.pub", PASS
    )
    return load_signer(folder / f"{name}.key", PASS), load_public_key(
        name, folder / f"{name}.pub"
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("keys")
    trusted = _keypair(folder, "trusted")
    other = _keypair(folder, "other")
    return {"signer": trusted[0], "key": trusted[1], "other": other[0]}


@pytest.fixture
def made(tmp_path: Path, keys: dict[str, Any]) -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for index in range(5):
        (tree / "sub" / f"f{index}").write_text(str(index))
    path = tmp_path / "baseline.fim"
    create_baseline(path, rules_for_paths([str(tree)]), keys["signer"], workers=1)
    return path


def test_a_fresh_baseline_verifies(made: Path, keys: dict[str, Any]) -> None:
    verified = open_baseline(made, [keys["key"]])
    entries = list(verified.entries())
    assert len(entries) == verified.statement["entries"] == 7
    assert verified.statement["algorithm"] == "sha256"
    assert verified.digest.startswith("sha256:")
    lines = made.read_bytes().splitlines()
    assert json.loads(lines[0])["format"] == "zerodrift.fim-baseline"


def test_one_edited_hash_is_tampering(made: Path, keys: dict[str, Any]) -> None:
    lines = made.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b"\tfile\t" in line)
    entry = decode_entry(lines[index])
    assert entry.hash is not None
    lines[index] = lines[index].replace(entry.hash.encode(), b"0" * 64)
    made.write_bytes(b"\n".join(lines))
    with pytest.raises(IntegrityError) as caught:
        open_baseline(made, [keys["key"]])
    assert caught.value.reference == "fim-baseline-tampered"


def test_reordered_lines_are_tampering(made: Path, keys: dict[str, Any]) -> None:
    lines = made.read_bytes().split(b"\n")
    lines[2], lines[3] = lines[3], lines[2]
    made.write_bytes(b"\n".join(lines))
    with pytest.raises(IntegrityError, match="do not match the signed digest"):
        open_baseline(made, [keys["key"]])


def test_stripped_signature_is_refused(made: Path, keys: dict[str, Any]) -> None:
    lines = made.read_bytes().split(b"\n")
    made.write_bytes(b"\n".join(lines[:-2]) + b"\n")
    with pytest.raises(VerificationError) as caught:
        open_baseline(made, [keys["key"]])
    assert caught.value.reference == "fim-baseline-unsigned"


def test_emptied_signature_list_is_refused(made: Path, keys: dict[str, Any]) -> None:
    lines = made.read_bytes().split(b"\n")
    envelope = json.loads(lines[-2])
    envelope["signatures"] = []
    lines[-2] = json.dumps(envelope).encode()
    made.write_bytes(b"\n".join(lines))
    with pytest.raises(VerificationError, match="no signature"):
        open_baseline(made, [keys["key"]])


def test_untrusted_signer_is_refused(made: Path, keys: dict[str, Any]) -> None:
    rules = open_baseline(made, [keys["key"]]).rules
    with BaselineWriter(made, rules, "scan") as writer:
        writer.sign(keys["other"], created_at="2026-01-01T00:00:00.000000Z")
    with pytest.raises(VerificationError) as caught:
        open_baseline(made, [keys["key"]])
    assert caught.value.reference == "fim-baseline-untrusted"


def test_a_signed_statement_of_another_type_is_refused(
    made: Path, keys: dict[str, Any]
) -> None:
    lines = made.read_bytes().split(b"\n")
    envelope = json.loads(lines[-2])
    envelope["payloadType"] = "application/vnd.zerodrift.other+json"
    lines[-2] = json.dumps(envelope).encode()
    made.write_bytes(b"\n".join(lines))
    with pytest.raises(VerificationError, match="refused"):
        open_baseline(made, [keys["key"]])


def test_an_edited_statement_breaks_the_signature(
    made: Path, keys: dict[str, Any]
) -> None:
    lines = made.read_bytes().split(b"\n")
    envelope = json.loads(lines[-2])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["entries"] = 3
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    lines[-2] = json.dumps(envelope).encode()
    made.write_bytes(b"\n".join(lines))
    with pytest.raises(VerificationError, match="not made by a trusted key"):
        open_baseline(made, [keys["key"]])


def test_a_baseline_from_another_host_is_refused(
    made: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        baseline_module,
        "host_identity",
        lambda: {"hostname": "elsewhere", "machine_id": "f" * 32},
    )
    with pytest.raises(VerificationError) as caught:
        open_baseline(made, [keys["key"]])
    assert caught.value.reference == "fim-baseline-other-host"
    assert "elsewhere" in caught.value.message


def test_a_missing_baseline_says_how_to_make_one(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    with pytest.raises(OperationalError, match="no baseline") as caught:
        open_baseline(tmp_path / "none.fim", [keys["key"]])
    assert "fim init" in str(caught.value.hint)


def test_an_unsigned_writer_leaves_nothing(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    path = tmp_path / "b.fim"
    with (
        pytest.raises(RuntimeError),
        BaselineWriter(path, rules_for_paths([str(tmp_path)]), "scan"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_many_entries_are_written_in_order_and_counted(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    # Lines are written in groups; a count that is not a multiple of the
    # group size must still be written whole, in order, under the digest.
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(2500):
        (tree / f"f{index:05d}").write_bytes(b"%d" % index)
    path = tmp_path / "baseline.fim"
    statement, _ = create_baseline(
        path, rules_for_paths([str(tree)]), keys["signer"], workers=1
    )
    entries = list(open_baseline(path, [keys["key"]]).entries())
    assert statement["entries"] == len(entries) == 2501
    names = [e.path.rsplit(b"/", 1)[-1] for e in entries[1:]]
    assert names == [b"f%05d" % i for i in range(2500)]


@pytest.mark.parametrize("count", [2, 3, 5, 64])
def test_shares_cut_at_whole_lines_cover_every_line_once(
    tmp_path: Path, keys: dict[str, Any], count: int
) -> None:
    tree = tmp_path / "tree"
    for folder in ("a", "b\\c", "d"):
        (tree / folder).mkdir(parents=True)
        for index in range(7):
            (tree / folder / f"f{index}").write_text("x" * index)
    path = tmp_path / "baseline.fim"
    create_baseline(path, rules_for_paths([str(tree)]), keys["signer"], workers=1)
    verified = open_baseline(path, [keys["key"]])
    every = list(verified.lines())
    cuts = verified.split(count)
    assert 0 < len(cuts) < count
    starts = [0, *(at for at, _ in cuts)]
    stops = [*(at for at, _ in cuts), None]
    shares = [list(verified.lines(a, b)) for a, b in zip(starts, stops, strict=True)]
    assert [line for share in shares for line in share] == every
    # Each cut's key is that of its share's first line, so a share's lines
    # are exactly the keys from its cut to the next.
    for (_, key), share in zip(cuts, shares[1:], strict=True):
        first = decode_entry(share[0]).path
        assert key == first.replace(b"/", b"\0")


def test_a_baseline_of_one_entry_is_not_cut(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    lone = tmp_path / "lone"
    lone.write_text("one file")
    path = tmp_path / "baseline.fim"
    create_baseline(path, rules_for_paths([str(lone)]), keys["signer"], workers=1)
    assert open_baseline(path, [keys["key"]]).split(4) == []


def test_a_sample_is_the_lines_of_its_buckets_in_every_share(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    for folder in range(9):
        (tree / f"d{folder}").mkdir(parents=True)
        for index in range(13):
            (tree / f"d{folder}" / f"f{index}").write_text("x" * index)
    path = tmp_path / "baseline.fim"
    create_baseline(path, rules_for_paths([str(tree)]), keys["signer"], workers=1)
    verified = open_baseline(path, [keys["key"]])
    every = list(verified.lines())
    # Small blocks, so lines and shares straddle block ends.
    monkeypatch.setattr(baseline_module, "_BLOCK", 97)
    for buckets in (frozenset({0}), frozenset({2, 5}), frozenset(range(7))):
        want = [line for n, line in enumerate(every) if n % 7 in buckets]
        assert list(verified.sample(buckets, 7)) == want
        for count in (2, 3, 5):
            cuts = [at for at, _ in verified.split(count)]
            starts, stops = [0, *cuts], [*cuts, None]
            got = [
                line
                for a, b in zip(starts, stops, strict=True)
                for line in verified.sample(buckets, 7, a, b)
            ]
            assert got == want, (buckets, count)
            shares = zip(starts, stops, strict=True)
            assert [line for a, b in shares for line in verified.lines(a, b)] == every


class _CountingReader(io.BytesIO):
    """A file whose reads are recorded."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_digests_are_computed_in_bounded_reads(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A baseline of millions of entries must never be read whole.
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(300):
        (tree / f"file-with-a-long-name-{index:04}").write_text(str(index))
    path = tmp_path / "baseline.fim"
    create_baseline(path, rules_for_paths([str(tree)]), keys["signer"], workers=1)
    data = path.read_bytes()
    assert len(data) > 10 * 1024
    monkeypatch.setattr(baseline_module, "_CHUNK", 1024)
    handle = _CountingReader(data)
    content, whole = baseline_module._digest_prefix(handle, 2048)
    assert handle.sizes
    assert all(0 < size <= 1024 for size in handle.sizes), sorted(set(handle.sizes))
    assert content == hashlib.sha256(data[:2048]).hexdigest()
    assert whole == "sha256:" + hashlib.sha256(data).hexdigest()
