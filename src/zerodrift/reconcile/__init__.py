"""Reconcile: desired state, planning, journalled surge-first apply."""

from zerodrift.reconcile.desired import DesiredService, desired_state, node_identity
from zerodrift.reconcile.plan import Action, Plan, plan_environment

__all__ = [
    "Action",
    "DesiredService",
    "Plan",
    "desired_state",
    "node_identity",
    "plan_environment",
]
