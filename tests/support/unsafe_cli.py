"""Run the CLI with image verification switched off (runtime tests only).

The runtime tests build unsigned busybox images; signing and verification
are tested with the image builds. ``python -m tests.support.unsafe_cli ARGS``
behaves like ``zerodrift ARGS`` otherwise.
"""

from __future__ import annotations

import sys

from zerodrift._cli.main import main
from zerodrift.reconcile.session import set_verifier_factory
from zerodrift.runtime.images import UnsafeNoVerification

REASON = "runtime tests run unsigned busybox images built by the fixtures"


def unsafe() -> UnsafeNoVerification:
    """The verifier runtime tests use."""
    return UnsafeNoVerification(REASON)


if __name__ == "__main__":
    set_verifier_factory(unsafe)
    sys.exit(main(sys.argv[1:]))
