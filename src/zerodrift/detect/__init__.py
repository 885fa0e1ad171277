"""Detect: findings, golden manifests, integrity checks of nodes and hosts."""
