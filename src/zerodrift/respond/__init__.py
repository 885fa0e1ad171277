"""Respond: answer node drift by replacement, keeping evidence people can trust.

:mod:`~zerodrift.respond.evidence` stores evidence content-addressed and
exports it as signed archives; :mod:`~zerodrift.respond.incidents` keeps the
incident records; :mod:`~zerodrift.respond.playbook` runs the response.
"""
