"""Protect: keys, signatures, and (later) hardened reproducible image builds."""
