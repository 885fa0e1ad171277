"""zerodrift: immutable infrastructure, made practical and provable.

The package is a library first and a command-line tool second. Public
modules list their API in ``__all__``; anything under ``_internal`` or
``_cli`` is private and may change without notice.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
