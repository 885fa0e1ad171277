"""in-toto statements: shape of the SLSA provenance, SBOM and golden statements."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from zerodrift.errors import VerificationError
from zerodrift.protect.provenance import (
    CYCLONEDX_BOM,
    GOLDEN_MANIFEST,
    SLSA_PROVENANCE,
    STATEMENT_TYPE,
    ResolvedDependency,
    Subject,
    encode_statement,
    golden_manifest_statement,
    parse_statement,
    provenance_statement,
    sbom_statement,
    subject_digests,
)

DIGEST = "sha256:" + "ab" * 32
SUBJECT = Subject("web", DIGEST)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _provenance(**kw: object) -> dict[str, object]:
    options: dict[str, object] = {
        "recipe_digest": "sha256:" + "11" * 32,
        "commit": "c" * 40,
        "repository": None,
        "dependencies": [
            ResolvedDependency(
                "busybox-static", "sha256:" + "22" * 32, "pkg:deb/debian/busybox"
            ),
            ResolvedDependency("/srv/www/index.html", "sha256:" + "33" * 32),
        ],
        "invocation_id": "run-1",
        "started_on": START,
        "finished_on": START + timedelta(seconds=7),
    }
    options.update(kw)
    return provenance_statement(SUBJECT, **options)  # type: ignore[arg-type]


def test_provenance_is_a_slsa_v1_statement_about_the_image() -> None:
    statement = _provenance()
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == SLSA_PROVENANCE
    assert statement["subject"] == [{"name": "web", "digest": {"sha256": "ab" * 32}}]
    definition = statement["predicate"]["buildDefinition"]  # type: ignore[index]
    assert definition["externalParameters"]["commit"] == "c" * 40
    assert definition["externalParameters"]["recipeDigest"] == "sha256:" + "11" * 32
    assert definition["resolvedDependencies"] == [
        {
            "name": "busybox-static",
            "digest": {"sha256": "22" * 32},
            "uri": "pkg:deb/debian/busybox",
        },
        {"name": "/srv/www/index.html", "digest": {"sha256": "33" * 32}},
    ]
    metadata = statement["predicate"]["runDetails"]["metadata"]  # type: ignore[index]
    assert metadata == {
        "invocationId": "run-1",
        "startedOn": "2026-03-01T12:00:00Z",
        "finishedOn": "2026-03-01T12:00:07Z",
    }


def test_times_must_carry_a_zone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        _provenance(started_on=datetime(2026, 1, 1))
    other = _provenance(
        finished_on=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    )
    assert other["predicate"]["runDetails"]["metadata"]["finishedOn"].endswith("+02:00")  # type: ignore[index]


def test_sbom_and_golden_statements() -> None:
    bom = sbom_statement(SUBJECT, json.dumps({"bomFormat": "CycloneDX"}))
    assert bom["predicateType"] == CYCLONEDX_BOM
    assert bom["predicate"] == {"bomFormat": "CycloneDX"}
    golden = golden_manifest_statement(
        SUBJECT, merkle_root="ee" * 32, manifest_digest=DIGEST, entries=3
    )
    assert golden["predicateType"] == GOLDEN_MANIFEST
    assert golden["predicate"]["merkleRoot"] == "ee" * 32


def test_encoding_is_canonical_and_round_trips() -> None:
    statement = _provenance()
    payload = encode_statement(statement)
    assert payload == encode_statement(json.loads(payload))
    parsed = parse_statement(payload)
    assert subject_digests(parsed) == {DIGEST}


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"_type": "https://in-toto.io/Statement/v0.1"}'],
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(VerificationError) as info:
        parse_statement(payload)
    assert info.value.reference == "statement-malformed"
