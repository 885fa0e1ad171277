"""Allow ``python -m zerodrift``."""

from zerodrift._cli.main import entrypoint

entrypoint()
