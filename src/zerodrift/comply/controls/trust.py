"""Govern: the trust policy names usable signing keys for every environment."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import ConfigError
from zerodrift.protect.keys import load_public_key

__all__ = ["trust_keys_per_environment"]


@control(
    "trust-keys-per-environment",
    title="The trust policy names a loadable signing key for every environment",
    csf=("GV.SC-05",),
)
def trust_keys_per_environment(evidence: Evidence) -> Verdict:
    """Supply-chain requirement: every environment has a trusted key.

    Supply-chain requirement: only artifacts signed by keys the spec trusts
    for an environment may run there, so each environment must list at least
    one key, and each listed key must be a readable public key.
    """
    spec = evidence.spec_in_force
    if spec is None:
        return Verdict.not_applicable("the spec in force at that time is not known")
    fleet, root = spec.fleet, spec.path.parent
    environments = (
        [evidence.environment] if evidence.environment else sorted(fleet.environments)
    )
    if not environments:
        return Verdict.not_applicable("the spec declares no environment")
    problems: list[str] = []
    refs: list[EvidenceRef] = [EvidenceRef("spec", spec.digest, "trust policy")]
    for env in environments:
        names = fleet.trust.environments.get(env, [])
        if not names:
            problems.append(f"{env}: no key")
        for name in names:
            try:
                key = load_public_key(name, root / fleet.trust.keys[name])
            except (ConfigError, KeyError) as exc:
                problems.append(f"{env}: key {name!r} unusable ({_why(exc)})")
                continue
            refs.append(EvidenceRef("trust-key", key.keyid, f"{name} for {env}"))
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(environments)} environments, each with a trusted signing key", refs
    )


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, ConfigError) else "not under trust.keys"
