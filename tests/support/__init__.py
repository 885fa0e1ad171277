"""Helpers for zerodrift's tests: real services started on private sockets."""
