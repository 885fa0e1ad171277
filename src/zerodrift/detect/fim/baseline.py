"""The signed baseline file: sorted tab-separated lines with a DSSE trailer.

Layout (ADR 0040)::

    {"format": "zerodrift.fim-baseline", "version": 1, "algorithm": ..., ...}
    /etc<TAB>dir<TAB>493<TAB>0<TAB>0<TAB><TAB>131073<TAB>...   one line per
    ...                                                  entry, in walk order
    {"payload": ..., "payloadType": ..., "signatures": [...]}   DSSE trailer

Entry lines are described in :mod:`zerodrift.detect.fim.entry`.

The trailer is a DSSE envelope (payload type :data:`PAYLOAD_TYPE`) whose
payload states the format, the algorithm, the number of entries, the host,
the rules, and the SHA-256 of every byte before the trailer. Editing,
re-ordering, adding or removing a line, stripping the trailer or signing
with another key all fail :func:`open_baseline`, which checks in this order:

1. the last line is a DSSE envelope;
2. a trusted key signed it, with the baseline payload type;
3. the payload names a format and version this code reads;
4. the bytes before the trailer hash to the signed digest;
5. the baseline was made on this host.

The writer streams entries into a temporary file while hashing them, so a
baseline of millions of entries needs no memory for them, and a failure
(a full disk) leaves the previous baseline untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from securesystemslib.signer import Signer

from zerodrift._internal.atomic import atomic_writer
from zerodrift._internal.canonical import canonical_json
from zerodrift.detect.fim.entry import (
    FIELDS,
    Entry,
    decode_entry,
    encode_entry,
    unescape,
)
from zerodrift.detect.fim.rules import RuleSet, sort_key
from zerodrift.errors import IntegrityError, OperationalError, VerificationError
from zerodrift.protect.dsse import (
    envelope_from_json,
    envelope_to_json,
    sign_payload,
    verify_envelope,
)
from zerodrift.protect.keys import PublicKey

__all__ = [
    "FIELDS",
    "FORMAT",
    "PAYLOAD_TYPE",
    "BaselineWriter",
    "VerifiedBaseline",
    "host_identity",
    "open_baseline",
]

FORMAT = "zerodrift.fim-baseline"
VERSION = 1
PAYLOAD_TYPE = "application/vnd.zerodrift.fim-baseline.v1+json"
_TAIL = 1 << 16
_BLOCK = 1 << 18
_CHUNK = 1 << 20
_GROUP = 1024


def host_identity() -> dict[str, str | None]:
    """This host's name and systemd machine id (when there is one)."""
    try:
        machine_id: str | None = Path("/etc/machine-id").read_text().strip() or None
    except OSError:
        machine_id = None
    return {"hostname": socket.gethostname(), "machine_id": machine_id}


class BaselineWriter:
    """Stream entries into a new baseline; sign and publish it at the end.

    Use as a context manager; call :meth:`add` per entry in walk order and
    :meth:`sign` last. Leaving the block without signing, or with an error,
    leaves the previous baseline in place.
    """

    def __init__(self, path: Path, rules: RuleSet, source: str) -> None:
        self.path = path
        self.rules = rules
        self.source = source
        self.count = 0
        self._digest = hashlib.sha256()
        self._cm: AbstractContextManager[IO[bytes]] | None = None
        self._handle: IO[bytes] | None = None
        self._signed = False
        self._pending: list[bytes] = []

    def __enter__(self) -> BaselineWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cm = atomic_writer(self.path, 0o640)
        self._handle = self._cm.__enter__()
        head = {
            "format": FORMAT,
            "version": VERSION,
            "algorithm": self.rules.algorithm,
            "fields": list(FIELDS),
        }
        self._write(json.dumps(head, separators=(",", ":")).encode())
        return self

    def __exit__(self, kind: Any, value: Any, trace: Any) -> None:
        if self._cm is None:
            return
        if kind is None and not self._signed:
            failure = RuntimeError("baseline left unsigned")
            self._cm.__exit__(RuntimeError, failure, None)
            raise failure
        self._cm.__exit__(kind, value, trace)

    @property
    def _out(self) -> IO[bytes]:
        if self._handle is None:
            raise RuntimeError("BaselineWriter used outside its 'with' block")
        return self._handle

    def add(self, entry: Entry) -> None:
        """Append one entry (entries must come in walk order)."""
        self.add_line(encode_entry(entry))

    def add_line(self, line: bytes) -> None:
        """Append one encoded entry line (without its newline)."""
        # Lines are written (and hashed) in groups: one call per line costs
        # more than the writing itself on trees of many small files.
        self._pending.append(line)
        self.count += 1
        if len(self._pending) >= _GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._pending.append(b"")
            data = b"\n".join(self._pending)
            self._pending = []
            self._write_raw(data)

    def sign(self, signer: Signer, *, created_at: str) -> dict[str, Any]:
        """Write the signed trailer; return the signed statement."""
        self._flush()
        statement = {
            "format": FORMAT,
            "version": VERSION,
            "algorithm": self.rules.algorithm,
            "fields": list(FIELDS),
            "entries": self.count,
            "content_sha256": self._digest.hexdigest(),
            "created_at": created_at,
            "host": host_identity(),
            "source": self.source,
            "rules": self.rules.to_dict(),
        }
        envelope = sign_payload(canonical_json(statement), PAYLOAD_TYPE, signer)
        try:
            self._out.write(envelope_to_json(envelope).encode() + b"\n")
        except OSError as exc:
            raise _write_error(self.path, exc) from exc
        self._signed = True
        return statement

    def _write(self, line: bytes) -> None:
        self._write_raw(line + b"\n")

    def _write_raw(self, data: bytes) -> None:
        self._digest.update(data)
        try:
            self._out.write(data)
        except OSError as exc:
            raise _write_error(self.path, exc) from exc


def _write_error(path: Path, exc: OSError) -> OperationalError:
    return OperationalError(
        f"cannot write baseline {path}: {exc.strerror}",
        hint="free disk space and run the command again; the old baseline is kept",
        reference="fim-baseline-write-failed",
    )


@dataclass
class VerifiedBaseline:
    """A baseline whose signature, digest and host were verified.

    Attributes:
        path: The file.
        statement: The signed statement (format, rules, host, digest...).
        digest: SHA-256 of the whole file, naming this exact baseline.
    """

    path: Path
    statement: dict[str, Any]
    digest: str
    _end: int

    @property
    def content_end(self) -> int:
        """Offset of the signed trailer: the end of the entries."""
        return self._end

    @property
    def rules(self) -> RuleSet:
        """The rules the baseline was made with."""
        return RuleSet.from_dict(self.statement["rules"], f"{self.path} (rules)")

    @property
    def algorithm(self) -> str:
        """The content hash algorithm."""
        return str(self.statement["algorithm"])

    def entries(self) -> Iterator[Entry]:
        """Stream the decoded entries (see :meth:`lines`).

        Raises:
            IntegrityError: The file changed since it was verified.
        """
        for line in self.lines():
            yield decode_entry(line)

    def lines(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Stream the entry lines, re-checking the digest as they are read.

        With ``start`` and ``stop`` (offsets where lines begin, from
        :meth:`split`), only the lines between them are yielded; the whole
        file is still hashed, so a change anywhere is noticed.

        Raises:
            IntegrityError: The file changed since it was verified.
        """
        for _, lines in self._blocks(start, stop):
            yield from lines

    def index(self, handle: IO[bytes]) -> dict[bytes, int]:
        """Map each path to the offset of its line in ``handle``.

        ``handle`` is this file, open for reading; it is hashed as it is
        indexed, so the offsets are known to point into the verified entries
        even if the file at :attr:`path` was replaced since verification.

        Raises:
            IntegrityError: The open file's entries are not the verified ones.
        """
        index: dict[bytes, int] = {}
        digest = hashlib.sha256()
        handle.seek(0)
        offset = 0
        for line in handle:
            if offset >= self._end:
                break
            digest.update(line)
            if offset:
                index[decode_entry(line).path] = offset
            offset += len(line)
        if (
            offset != self._end
            or digest.hexdigest() != self.statement["content_sha256"]
        ):
            raise _tampered(self.path, "it was replaced after it was verified")
        return index

    def sample(
        self,
        buckets: frozenset[int],
        count: int,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[bytes]:
        """Stream the lines whose line number falls in ``buckets``.

        Entry lines are numbered from 0 in the file; line ``n`` is in
        bucket ``n % count``. Only lines between ``start`` and ``stop``
        (see :meth:`lines`) are yielded, numbered as in the whole file. The
        selection is done by slicing, not line by line.

        Raises:
            IntegrityError: The file changed since it was verified.
        """
        for number, lines in self._blocks(start, stop):
            yield from _pick(lines, number, buckets, count)

    def _blocks(
        self, start: int, stop: int | None
    ) -> Iterator[tuple[int, list[bytes]]]:
        # The whole lines between start and stop, a block's worth at a time,
        # each group with the number of its first line. Blocks, not
        # readline: this runs once per entry on every check. The whole file
        # is hashed, and checked against the signed digest at the end.
        digest = hashlib.sha256()
        stop = self._end if stop is None else stop
        number = 0
        with _open(self.path) as handle:
            head = handle.readline()
            digest.update(head)
            offset = len(head)
            rest = b""
            while offset < self._end:
                block = handle.read(min(self._end - offset, _BLOCK))
                if not block:
                    break
                digest.update(block)
                low, high = max(start - offset, 0), min(stop - offset, len(block))
                if low > 0:
                    number += block.count(b"\n", 0, low)
                offset += len(block)
                if low >= len(block) or high <= 0:
                    continue
                lines = (rest + block[low:high]).split(b"\n")
                rest = lines.pop()
                yield number, lines
                number += len(lines)
            if rest:
                yield number, [rest]
        if digest.hexdigest() != self.statement["content_sha256"]:
            raise _tampered(self.path, "it changed while it was being read")

    def split(self, count: int) -> list[tuple[int, bytes]]:
        """Where to cut the entries into ``count`` shares of similar size.

        Returns the offset and sort key of each share's first line after
        the first share (so at most ``count - 1`` cuts, fewer for small
        baselines). The cuts are read at even byte offsets: line lengths
        vary little, so shares get about as many entries. Any cuts give a
        correct check (each share compares the keys between two cuts with
        the walk of the same keys); good ones only balance the work.
        """
        cuts: list[tuple[int, bytes]] = []
        with _open(self.path) as handle:
            first = len(handle.readline())
            for index in range(1, count):
                handle.seek(first + (self._end - first) * index // count - 1)
                handle.readline()  # to the start of the next whole line
                at = handle.tell()
                line = handle.readline()
                if not first < at < self._end or (cuts and at <= cuts[-1][0]):
                    continue
                raw = line[: line.find(b"\t")]
                cuts.append((at, sort_key(unescape(raw))))
        return cuts


def _pick(
    lines: list[bytes], number: int, buckets: frozenset[int], count: int
) -> list[bytes]:
    # The lines of ``buckets`` among ``lines``, whose first is line ``number``.
    chosen = sorted(
        index
        for bucket in buckets
        for index in range((bucket - number) % count, len(lines), count)
    )
    return [lines[index] for index in chosen]


def open_baseline(
    path: Path, keys: Sequence[PublicKey], *, check_host: bool = True
) -> VerifiedBaseline:
    """Verify a baseline file (steps in the module docstring).

    Raises:
        VerificationError: Unsigned, signed by an untrusted key, an unknown
            format, or made on another host.
        IntegrityError: The entries do not match the signed digest.
        OperationalError: The file cannot be read.
    """
    # Step 1: the trailer is a DSSE envelope.
    with _open(path) as handle:
        end, trailer = _trailer(handle, path)
        envelope = _envelope(trailer, path)
        # Step 2: signed by a trusted key, as a baseline.
        payload = _verify(envelope, keys, path)
        statement = _statement(payload, path)
        # Step 4: the content matches the signed digest.
        handle.seek(0)
        content, whole = _digest_prefix(handle, end)
    if content != statement["content_sha256"]:
        raise _tampered(path, "its entries do not match the signed digest")
    # Step 5: made on this host.
    if check_host:
        _check_host(statement, path)
    return VerifiedBaseline(path, statement, whole, end)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise OperationalError(
            f"no baseline at {path}",
            hint="create one with 'zerodrift fim init'",
            reference="fim-baseline-missing",
        ) from exc
    except OSError as exc:
        raise OperationalError(
            f"cannot read baseline {path}: {exc.strerror}",
            reference="fim-baseline-unreadable",
        ) from exc


def _trailer(handle: IO[bytes], path: Path) -> tuple[int, bytes]:
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - _TAIL)
    handle.seek(start)
    tail = handle.read()
    body = tail[:-1] if tail.endswith(b"\n") else tail
    cut = body.rfind(b"\n")
    if cut < 0 and start > 0:
        raise _unsigned(path, "its last line is too long to be a signature")
    return start + cut + 1, body[cut + 1 :]


def _envelope(trailer: bytes, path: Path) -> dict[str, Any]:
    try:
        # Validation only: envelope_from_json empties the signature objects of
        # the dict it returns, so the envelope used is parsed separately.
        envelope_from_json(trailer)
        envelope: dict[str, Any] = json.loads(trailer)
    except VerificationError:
        raise _unsigned(path, "its last line is not a DSSE envelope") from None
    if not envelope.get("signatures"):
        raise _unsigned(path, "its envelope carries no signature")
    return envelope


def _verify(envelope: dict[str, Any], keys: Sequence[PublicKey], path: Path) -> bytes:
    try:
        return verify_envelope(envelope, keys, payload_type=PAYLOAD_TYPE)
    except VerificationError as exc:
        raise VerificationError(
            f"baseline {path} is refused: {exc.message}",
            hint=exc.hint
            or "re-create the baseline with 'zerodrift fim init' and a trusted key",
            reference="fim-baseline-untrusted",
        ) from exc


def _statement(payload: bytes, path: Path) -> dict[str, Any]:
    # Step 3: a format and version this code reads.
    try:
        statement = json.loads(payload)
        known = statement["format"] == FORMAT and statement["version"] == VERSION
        known = known and statement["fields"] == list(FIELDS)
    except (ValueError, KeyError, TypeError):
        known = False
    if not known:
        raise VerificationError(
            f"baseline {path} is signed but its format is not "
            f"{FORMAT} version {VERSION}",
            hint="upgrade zerodrift, or re-create the baseline",
            reference="fim-baseline-format",
        )
    return dict(statement)


def _digest_prefix(handle: IO[bytes], end: int) -> tuple[str, str]:
    # SHA-256 of the first ``end`` bytes and of the whole file, read in
    # chunks: a baseline of a million entries is about 180 MB.
    content = hashlib.sha256()
    left = end
    while left > 0:
        chunk = handle.read(min(left, _CHUNK))
        if not chunk:
            break
        content.update(chunk)
        left -= len(chunk)
    whole = content.copy()
    while chunk := handle.read(_CHUNK):
        whole.update(chunk)
    return content.hexdigest(), "sha256:" + whole.hexdigest()


def _check_host(statement: dict[str, Any], path: Path) -> None:
    made_on = statement.get("host") or {}
    here = host_identity()
    same = (
        made_on.get("machine_id") == here["machine_id"]
        if made_on.get("machine_id") and here["machine_id"]
        else made_on.get("hostname") == here["hostname"]
    )
    if not same:
        raise VerificationError(
            f"baseline {path} was made on host {made_on.get('hostname')!r} "
            f"(machine id {made_on.get('machine_id')}), not on this host "
            f"{here['hostname']!r} (machine id {here['machine_id']})",
            hint="run 'zerodrift fim init' on this host, or build the baseline "
            "from the image's golden manifest with 'fim init --from-manifest'",
            reference="fim-baseline-other-host",
        )


def _unsigned(path: Path, why: str) -> VerificationError:
    return VerificationError(
        f"baseline {path} is refused: {why}",
        hint="a baseline must carry the signature written by 'zerodrift fim init'; "
        "re-create it",
        reference="fim-baseline-unsigned",
    )


def _tampered(path: Path, why: str) -> IntegrityError:
    return IntegrityError(
        f"baseline {path} has been modified: {why}",
        hint="treat the host as compromised; restore the baseline from a trusted "
        "copy or re-create it from the golden manifest",
        reference="fim-baseline-tampered",
    )
