"""One-way flow rules: what the spec's flows become, and their nft table."""

from __future__ import annotations

import os
import shutil

import pytest

from zerodrift.errors import ConfigError, OperationalError
from zerodrift.reconcile.desired import desired_state, flow_rules
from zerodrift.runtime.firewall import (
    NetworkAddress,
    as_listed,
    differences,
    network_addresses,
    ruleset,
)
from zerodrift.spec import parse_spec

SPEC = b"""
version: 1
name: shop
images:
  web: {entrypoint: [/bin/web]}
  api: {entrypoint: [/bin/api]}
  db: {entrypoint: [/bin/db]}
services:
  web:
    image: web
    talks_to: [api:http, api:9090]
  api:
    image: api
    ports:
      - {name: http, port: 8081}
      - {name: metrics, port: 9090}
      - {name: sync, port: 7000, protocol: udp}
    talks_to: [db:sql, "db:7001"]
  db:
    image: db
    ports: [{name: sql, port: 5432}, {name: gossip, port: 7001, protocol: udp}]
environments:
  prod: {}
"""
DIGESTS = {name: "sha256:" + c * 64 for name, c in (("web", "a"), ("api", "b"))}
DIGESTS["db"] = "sha256:" + "c" * 64
WEB_API = "zd-shop-prod-web-to-api"
API_DB = "zd-shop-prod-api-to-db"


def _fleet(raw: bytes = SPEC):  # type: ignore[no-untyped-def]
    return parse_spec(raw, "fleet.yaml").fleet


def test_each_flow_gives_its_source_out_and_its_target_in_on_its_ports() -> None:
    rules = flow_rules(_fleet(), "prod")
    assert rules == {
        "web": {WEB_API: {"direction": "out", "ports": ["8081/tcp", "9090/tcp"]}},
        "api": {
            WEB_API: {"direction": "in", "ports": ["8081/tcp", "9090/tcp"]},
            API_DB: {"direction": "out", "ports": ["5432/tcp", "7001/udp"]},
        },
        "db": {API_DB: {"direction": "in", "ports": ["5432/tcp", "7001/udp"]}},
    }
    desired = {d.name: d for d in desired_state(_fleet(), "prod", DIGESTS)}
    assert desired["db"].config["flows"] == rules["db"]


def test_a_changed_flow_port_gives_both_ends_new_identities() -> None:
    before = {d.name: d.identity for d in desired_state(_fleet(), "prod", DIGESTS)}
    changed = SPEC.replace(b"talks_to: [api:http, api:9090]", b"talks_to: [api:http]")
    after = {
        d.name: d.identity for d in desired_state(_fleet(changed), "prod", DIGESTS)
    }
    assert after["web"] != before["web"]
    assert after["api"] != before["api"]
    assert after["db"] == before["db"]


ADDRESSES = {
    WEB_API: NetworkAddress(("10.89.1.0/24",), ("10.89.1.1",)),
    API_DB: NetworkAddress(("10.89.2.0/24", "fd00:2::/64"), ("10.89.2.1", "fd00:2::1")),
}


def test_ruleset_allows_only_the_declared_direction_and_ports() -> None:
    api = flow_rules(_fleet(), "prod")["api"]
    assert ruleset(api, ADDRESSES) == (
        "table inet zerodrift {\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        "\t\tct state established,related accept\n"
        '\t\tiif "lo" accept\n'
        "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n"
        "\t\tip saddr 10.89.1.0/24 tcp dport { 8081, 9090 } accept\n"
        "\t\treject with icmpx admin-prohibited\n"
        "\t}\n"
        "\n"
        "\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy drop;\n"
        "\t\tct state established,related accept\n"
        '\t\toif "lo" accept\n'
        "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n"
        "\t\tip daddr 10.89.2.0/24 tcp dport 5432 accept\n"
        "\t\tip daddr 10.89.2.0/24 udp dport 7001 accept\n"
        "\t\tip6 daddr fd00:2::/64 tcp dport 5432 accept\n"
        "\t\tip6 daddr fd00:2::/64 udp dport 7001 accept\n"
        "\t\tip daddr 10.89.1.1 udp dport 53 accept\n"
        "\t\tip daddr 10.89.1.1 tcp dport 53 accept\n"
        "\t\tip daddr 10.89.2.1 udp dport 53 accept\n"
        "\t\tip daddr 10.89.2.1 tcp dport 53 accept\n"
        "\t\tip6 daddr fd00:2::1 udp dport 53 accept\n"
        "\t\tip6 daddr fd00:2::1 tcp dport 53 accept\n"
        "\t\treject with icmpx admin-prohibited\n"
        "\t}\n"
        "}\n"
    )


def test_ruleset_refuses_a_flow_network_without_a_subnet() -> None:
    web = flow_rules(_fleet(), "prod")["web"]
    with pytest.raises(OperationalError) as caught:
        ruleset(web, {WEB_API: NetworkAddress(())})
    assert caught.value.reference == "flow-network-unknown"
    assert WEB_API in caught.value.message


def test_network_addresses_come_from_the_nodes_inspect_data() -> None:
    inspect = {
        "NetworkSettings": {
            "Networks": {
                WEB_API: {
                    "IPAddress": "10.89.1.7",
                    "IPPrefixLen": 24,
                    "Gateway": "10.89.1.1",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "IPv6Gateway": "",
                },
                API_DB: {
                    "IPAddress": "10.89.2.9",
                    "IPPrefixLen": 24,
                    "Gateway": "10.89.2.1",
                    "GlobalIPv6Address": "fd00:2::9",
                    "GlobalIPv6PrefixLen": 64,
                    "IPv6Gateway": "fd00:2::1",
                },
            }
        }
    }
    assert network_addresses(inspect) == ADDRESSES
    assert network_addresses({}) == {}


def test_differences_ignore_layout_but_not_order_or_content() -> None:
    rules = ruleset(flow_rules(_fleet(), "prod")["db"], ADDRESSES)
    assert differences(rules, rules.replace("\t", "    ").replace("\n\n", "\n")) == (
        [],
        [],
    )
    opened = rules.replace("policy drop", "policy accept")
    missing, extra = differences(rules, opened)
    assert missing == [
        "type filter hook input priority filter; policy drop;",
        "type filter hook output priority filter; policy drop;",
    ]
    assert len(extra) == 2
    assert differences(rules, None)[0] == differences(rules, "")[0]
    assert len(differences(rules, None)[0]) == len(rules.strip().splitlines()) - 1
    lines = rules.splitlines()
    swapped = "\n".join([*lines[:3], lines[4], lines[3], *lines[5:]])
    assert differences(rules, swapped) != ([], [])


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and util-linux for a scratch network namespace",
)
def test_nft_accepts_the_ruleset_and_lists_it_back_unchanged() -> None:
    """The rendering is what nft itself prints (checked in a scratch netns)."""
    rules = ruleset(flow_rules(_fleet(), "prod")["api"], ADDRESSES)
    assert as_listed(rules) == rules
    # The same rules written another way list the same: what a live table is
    # compared with when another nftables version prints it differently.
    other = rules.replace(
        "ct state established,related", "ct state related,established"
    ).replace("{ 8081, 9090 }", "{ 9090, 8081 }")
    assert other != rules
    assert as_listed(other) == rules
    assert as_listed("table inet zerodrift { chain input { bogus } }") is None


def test_a_flow_to_an_undeclared_port_is_a_config_error() -> None:
    # The spec loader refuses this first; desired state does not guess.
    fleet = _fleet()
    web = fleet.services["web"]
    flow = web.talks_to[0].model_copy(update={"port": "nope"})
    services = {**fleet.services, "web": web.model_copy(update={"talks_to": [flow]})}
    broken = fleet.model_copy(update={"services": services})
    with pytest.raises(ConfigError) as caught:
        flow_rules(broken, "prod")
    assert caught.value.reference == "flow-port-unknown"
    assert caught.value.location is not None
    assert caught.value.location.field == "services.web.talks_to"
