"""The pure planner: create, replace (with reasons) and destroy, never update."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zerodrift.reconcile.desired import DesiredService
from zerodrift.reconcile.plan import Plan, plan_environment
from zerodrift.runtime.backend import ActualNode

NOW = 1_000_000.0


def _want(replicas: int = 2, digest: str = "sha256:" + "a" * 64) -> DesiredService:
    return DesiredService(
        name="web",
        environment="prod",
        replicas=replicas,
        image="web",
        image_digest=digest,
        config={"service": "web"},
        config_digest="sha256:" + "c" * 64,
        identity="sha256:" + "1" * 64,
        max_age=3600,
        max_surge=1,
        max_unavailable=0,
        health_timeout=10,
    )


def _node(name: str, **overrides: Any) -> ActualNode:
    labels = {
        "io.zerodrift.managed": "true",
        "io.zerodrift.fleet": "shop",
        "io.zerodrift.environment": "prod",
        "io.zerodrift.service": "web",
        "io.zerodrift.identity": "sha256:" + "1" * 64,
        "io.zerodrift.image-digest": "sha256:" + "a" * 64,
        "io.zerodrift.config-digest": "sha256:" + "c" * 64,
        "io.zerodrift.generation": "3",
    }
    labels.update({k: str(v) for k, v in overrides.pop("labels", {}).items()})
    return ActualNode(
        name=name,
        node_id=name + "-id",
        labels=labels,
        state=overrides.get("state", "running"),
        created_at=float(overrides.get("created_at", NOW - 10)),
        facts_digest=str(overrides.get("facts", "f1")),
    )


def _plan(
    nodes: list[ActualNode], want: DesiredService | None = None, **kw: Any
) -> Plan:
    recorded = {n.name: "f1" for n in nodes}
    return plan_environment(
        [want or _want()],
        nodes,
        fleet="shop",
        environment="prod",
        now=NOW,
        recorded_facts=recorded,
        **kw,
    )


def test_empty_environment_creates_every_replica() -> None:
    plan = _plan([])
    assert [(a.kind, a.reason) for a in plan.actions] == [("create", "missing")] * 2
    assert plan.actions[0].generation == 1


def test_a_requested_replacement_replaces_every_node_of_the_service() -> None:
    plan = _plan([_node("a"), _node("b", facts="f2")], replace={"web"})
    assert [(a.kind, a.node, a.reason) for a in plan.actions] == [
        # A stronger reason wins where there is one.
        ("replace", "a", "replacement requested"),
        ("replace", "b", "drifted"),
    ]
    assert {a.generation for a in plan.actions} == {4}
    assert _plan([_node("a"), _node("b")], replace={"api"}).empty


def test_flow_rules_changed_in_place_make_a_node_drifted() -> None:
    changed = dataclasses.replace(_node("a"), flows_enforced=False)
    unread = dataclasses.replace(_node("b"), flows_enforced=None)
    plan = _plan([changed, unread])
    assert [(a.kind, a.node, a.reason) for a in plan.actions] == [
        ("replace", "a", "drifted")
    ]
    intact = [dataclasses.replace(_node(n), flows_enforced=True) for n in "ab"]
    assert _plan(intact).empty


def test_matching_nodes_mean_no_actions() -> None:
    plan = _plan([_node("a"), _node("b")])
    assert plan.empty
    assert plan.unchanged == 2


def test_replace_reasons() -> None:
    cases = {
        "image changed": _node("a", labels={"io.zerodrift.image-digest": "sha256:x"}),
        "config changed": _node("a", labels={"io.zerodrift.config-digest": "x"}),
        "not running": _node("a", state="exited"),
        "drifted": _node("a", facts="f2"),
        "older than max_age": _node("a", created_at=NOW - 7200),
    }
    for reason, node in cases.items():
        plan = _plan([node, _node("b")])
        assert [(a.kind, a.reason, a.node) for a in plan.actions] == [
            ("replace", reason, "a")
        ], reason
        assert {a.kind for a in plan.actions} <= {"create", "replace", "destroy"}


def test_unrecorded_node_is_replaced() -> None:
    plan = plan_environment(
        [_want(1)],
        [_node("a")],
        fleet="shop",
        environment="prod",
        now=NOW,
        recorded_facts={},
    )
    assert [(a.kind, a.reason) for a in plan.actions] == [("replace", "unrecorded")]


def test_surplus_and_superseded_are_destroyed() -> None:
    plan = _plan([_node("a"), _node("b"), _node("c")], _want(1))
    assert sorted((a.kind, a.reason) for a in plan.actions) == [
        ("destroy", "surplus"),
        ("destroy", "surplus"),
    ]
    old = _node("old", labels={"io.zerodrift.image-digest": "sha256:x"})
    plan = _plan([_node("a"), old], _want(1))
    assert [(a.kind, a.reason, a.node) for a in plan.actions] == [
        ("destroy", "superseded", "old")
    ]


def test_unmanaged_and_foreign_nodes() -> None:
    stray = ActualNode("stray", "id", {}, "running", NOW)
    other_env = _node("x", labels={"io.zerodrift.environment": "dev"})
    removed = _node("gone", labels={"io.zerodrift.service": "legacy"})
    plan = _plan([stray, other_env, removed, _node("a"), _node("b")])
    assert plan.empty
    assert {(u.name, u.reason) for u in plan.unmanaged} == {
        ("stray", "unmanaged"),
        ("gone", "service removed"),
    }
    pruned = _plan([stray, _node("a"), _node("b")], prune=True)
    assert [(a.kind, a.node) for a in pruned.actions] == [("destroy", "stray")]


def test_new_image_gets_next_generation() -> None:
    want = _want(1, digest="sha256:" + "b" * 64)
    plan = _plan([_node("a")], want)
    assert plan.actions[0].generation == 4
    assert plan.actions[0].previous_digest == "sha256:" + "a" * 64


_STALE = st.sampled_from(
    [
        {},
        {"labels": {"io.zerodrift.image-digest": "sha256:old"}},
        {"labels": {"io.zerodrift.config-digest": "old"}},
        {"state": "exited"},
        {"facts": "changed"},
        {"created_at": NOW - 7200},
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(min_value=0, max_value=6),
    kinds=st.lists(_STALE, max_size=10),
    strays=st.integers(min_value=0, max_value=3),
    prune=st.booleans(),
)
def test_applying_any_plan_converges(
    replicas: int, kinds: list[dict[str, object]], strays: int, prune: bool
) -> None:
    nodes = [_node(f"n{i}", **dict(kind)) for i, kind in enumerate(kinds)]
    others = [ActualNode(f"s{i}", f"s{i}", {}, "running", NOW) for i in range(strays)]
    plan = _plan(nodes + others, _want(replicas), prune=prune)
    touched = [a.node for a in plan.actions if a.node is not None]
    assert len(touched) == len(set(touched))  # each node acted on once at most
    assert {a.kind for a in plan.actions} <= {"create", "replace", "destroy"}
    # Simulate: replaced and destroyed nodes go, created and replacements come.
    remaining = {n.name for n in nodes} - set(touched)
    good_after = len(remaining) + sum(
        a.kind in ("create", "replace") for a in plan.actions
    )
    assert good_after == replicas
    # What remains untouched is good; strays go only with --prune.
    stale = {n.name for n, k in zip(nodes, kinds, strict=True) if k}
    assert not remaining & stale
    assert {n for n in touched if n.startswith("s")} == (
        {o.name for o in others} if prune else set()
    )


def test_a_node_belongs_to_the_state_that_labelled_it_or_to_any_if_unlabelled() -> None:
    mine, theirs = "1" * 32, "2" * 32
    labelled = _node("a", labels={"io.zerodrift.state": mine})
    # Created before nodes carried the state label: whoever deploys the fleet.
    older = _node("b")
    assert labelled.deployed_as("shop", "prod")
    assert labelled.belongs_to("shop", "prod", mine)
    assert not labelled.belongs_to("shop", "prod", theirs)
    assert older.belongs_to("shop", "prod", theirs)
    assert not labelled.belongs_to("shop", "dev", mine)
    assert not labelled.belongs_to("web", "prod", mine)
    stray = ActualNode("c", "c", {"io.zerodrift.state": mine}, "running", NOW)
    assert not stray.deployed_as("shop", "prod")
    assert not stray.belongs_to("shop", "prod", mine)
