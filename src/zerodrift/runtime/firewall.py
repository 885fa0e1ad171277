"""One-way data flows: nftables rules inside each node's network namespace.

A flow network (ADR 0023) joins the nodes of both ends of one flow, so on
its own it lets either end open connections to the other. ADR 0026 closes
that: before a node's workload starts, zerodrift installs a small nftables
table in the node's own network namespace that allows, on every flow
network, only what the flow declares:

- where the node is the flow's *source* (direction ``out``), new outgoing
  connections to the network's subnet on the flow's ports;
- where it is the *target* (direction ``in``), new incoming connections
  from the network's subnet on the flow's ports;
- replies to those (``ct state established,related``), loopback, IPv6
  neighbour discovery, and DNS to each network's gateway (podman's DNS
  server for the aliases).

Everything else on any interface is refused (``policy drop`` and a final
``reject``), IPv6 link-local addresses included. The rules are installed
from the host (``nsenter --net=... nft -f -``), so the image needs no tool,
and the node, which holds no ``CAP_NET_ADMIN``, cannot change them.

:func:`ruleset` renders the table exactly as ``nft list table`` prints it
(nftables 1.0.6), so :func:`differences` can compare a live listing with the
declared one; :func:`as_listed` gives the declared table as another version
lists it.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zerodrift.errors import OperationalError

__all__ = [
    "TABLE",
    "NetworkAddress",
    "as_listed",
    "differences",
    "install",
    "installed",
    "matches",
    "netns_path",
    "network_addresses",
    "ruleset",
]

TABLE = "zerodrift"
"""Name of the ``inet`` table zerodrift owns in each node's namespace."""

_NFT_TIMEOUT = 10.0


@dataclass(frozen=True)
class NetworkAddress:
    """Where one network lives, as seen by a node attached to it.

    Attributes:
        subnets: The network's subnets (``10.89.3.0/24``), IPv4 and IPv6.
        gateways: Its gateway addresses (where podman's DNS server answers).
    """

    subnets: tuple[str, ...]
    gateways: tuple[str, ...] = ()


def network_addresses(inspect: Mapping[str, Any]) -> dict[str, NetworkAddress]:
    """The subnets and gateways of a node's networks, from its inspect data.

    Podman fills these in once the node's network namespace exists (after
    ``init``), before its workload starts.
    """
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    result = {}
    for name, net in sorted(networks.items()):
        subnets = []
        gateways = []
        for address, prefix, gateway in (
            (net.get("IPAddress"), net.get("IPPrefixLen"), net.get("Gateway")),
            (
                net.get("GlobalIPv6Address"),
                net.get("GlobalIPv6PrefixLen"),
                net.get("IPv6Gateway"),
            ),
        ):
            if address and prefix:
                interface = ipaddress.ip_interface(f"{address}/{prefix}")
                subnets.append(str(interface.network))
            if gateway:
                gateways.append(str(ipaddress.ip_address(gateway)))
        result[name] = NetworkAddress(tuple(subnets), tuple(gateways))
    return result


def ruleset(
    flows: Mapping[str, Mapping[str, Any]], addresses: Mapping[str, NetworkAddress]
) -> str:
    """The nftables table that enforces a node's flows (pure).

    Args:
        flows: Network -> ``{"direction": "in" | "out", "ports":
            ["8081/tcp", ...]}`` (a node config's ``flows``).
        addresses: Network -> its subnets and gateways.

    Returns:
        The table in ``nft list table`` form, ready for ``nft -f -``.

    Raises:
        OperationalError: A flow network has no known subnet, so its rule
            could not be written (``flow-network-unknown``).
    """
    accept: dict[str, list[str]] = {"in": [], "out": []}
    gateways: set[str] = set()
    for net, rule in sorted(flows.items()):
        address = addresses.get(net)
        if address is None or not address.subnets:
            raise OperationalError(
                f"flow network {net} has no subnet the node is attached to",
                hint="the node was not attached to all its flow networks; "
                "check 'podman network inspect' and the podman service log",
                reference="flow-network-unknown",
            )
        gateways.update(address.gateways)
        side = "saddr" if rule["direction"] == "in" else "daddr"
        for subnet in address.subnets:
            family = "ip6" if ipaddress.ip_network(subnet).version == 6 else "ip"
            for protocol, ports in _ports_by_protocol(rule["ports"]).items():
                accept[rule["direction"]].append(
                    f"{family} {side} {subnet} {protocol} dport {ports} accept"
                )
    for gateway_ip in sorted(map(ipaddress.ip_address, gateways), key=_address_order):
        gateway = str(gateway_ip)
        family = "ip6" if gateway_ip.version == 6 else "ip"
        for protocol in ("udp", "tcp"):
            accept["out"].append(f"{family} daddr {gateway} {protocol} dport 53 accept")
    lines = [f"table inet {TABLE} {{"]
    for chain, side, loopback in (("input", "in", "iif"), ("output", "out", "oif")):
        if chain == "output":
            lines.append("")  # nft separates chains with a blank line
        lines += [
            f"\tchain {chain} {{",
            f"\t\ttype filter hook {chain} priority filter; policy drop;",
            "\t\tct state established,related accept",
            f'\t\t{loopback} "lo" accept',
            "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
            *(f"\t\t{rule}" for rule in accept[side]),
            "\t\treject with icmpx admin-prohibited",
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _address_order(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> tuple[int, int]:
    """IPv4 before IPv6, each in numeric order."""
    return (address.version, int(address))


def _ports_by_protocol(ports: list[str]) -> dict[str, str]:
    """``["8081/tcp", "53/udp", "8080/tcp"]`` -> ``{"tcp": "{ 8080, 8081 }", ...}``."""
    numbers: dict[str, set[int]] = {}
    for port in ports:
        number, _, protocol = port.partition("/")
        numbers.setdefault(protocol or "tcp", set()).add(int(number))
    return {
        protocol: str(next(iter(found)))
        if len(found) == 1
        else "{ " + ", ".join(str(n) for n in sorted(found)) + " }"
        for protocol, found in sorted(numbers.items())
    }


def differences(expected: str, actual: str | None) -> tuple[list[str], list[str]]:
    """Rule lines missing from ``actual`` and lines it has in excess.

    Whitespace and blank lines do not count; the order of lines inside a
    chain does (rules are evaluated in order), so a moved line shows as
    missing and extra.

    Args:
        expected: The table as :func:`ruleset` renders it.
        actual: The live listing, ``None`` when the table is absent.
    """
    want = _lines(expected)
    have = _lines(actual or "")
    if want == have:
        return [], []
    missing = [line for line in want if line not in have]
    extra = [line for line in have if line not in want]
    if not missing and not extra:  # same lines, another order
        missing, extra = want, have
    return missing, extra


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def netns_path(inspect: Mapping[str, Any]) -> str:
    """A node's network namespace: podman's named one, else its init's.

    Raises:
        OperationalError: The node has no namespace (not initialised).
    """
    key = (inspect.get("NetworkSettings") or {}).get("SandboxKey")
    if key:
        return str(key)
    pid = int((inspect.get("State") or {}).get("Pid") or 0)
    if not pid:
        raise OperationalError(
            f"node {inspect.get('Name', '?')} has no network namespace yet",
            hint="the node must be initialised or running",
            reference="flow-rules-failed",
        )
    return f"/proc/{pid}/ns/net"


def install(netns: str, rules: str) -> None:
    """Load ``rules`` into the network namespace at path ``netns``.

    The table is replaced as one nftables transaction: either the whole new
    table is in force afterwards or the namespace is unchanged.

    Raises:
        OperationalError: ``nft`` or ``nsenter`` is missing or refused
            (``flow-rules-failed``).
    """
    script = f"table inet {TABLE}\ndelete table inet {TABLE}\n{rules}"
    _nft(netns, ["-f", "-"], script)


def installed(netns: str) -> str | None:
    """The zerodrift table live in namespace ``netns``; ``None`` when absent.

    Raises:
        OperationalError: The namespace could not be entered or ``nft``
            failed for another reason than a missing table.
    """
    try:
        return _nft(netns, ["list", "table", "inet", TABLE], "")
    except OperationalError as exc:
        if "No such file or directory" in exc.message:
            return None
        raise


def matches(declared: str, live: str | None) -> bool:
    """Whether the ``live`` listing holds exactly the ``declared`` table.

    Compared as text first, then, when the texts differ, with the declared
    table as this host's ``nft`` lists it (:func:`as_listed`), so another
    nftables version's formatting is not taken for a change.
    """
    if live is None:
        return False
    if differences(declared, live) == ([], []):
        return True
    listed = as_listed(declared)
    return listed is not None and differences(listed, live) == ([], [])


@functools.lru_cache(maxsize=256)
def as_listed(rules: str) -> str | None:
    """``rules`` as this host's ``nft`` lists them once loaded.

    :func:`ruleset` writes the table the way nftables 1.0.6 lists it; other
    versions may list the same rules differently. Loading the table into a
    throwaway network namespace (``unshare --net``) and listing it there
    gives the form to compare a live listing with. ``None`` when that
    cannot be done here (no ``unshare``, not root, or ``nft`` refused).
    """
    unshare, nft = shutil.which("unshare"), shutil.which("nft") or _sbin("nft")
    if unshare is None or nft is None:
        return None
    # Two nft runs in one namespace: a list inside the loading batch shows
    # the table as it was before the batch.
    script = '"$0" -f - && "$0" list table inet "$1"'
    try:
        done = subprocess.run(
            [unshare, "--net", "--", "sh", "-c", script, nft, TABLE],
            input=rules,
            env={**os.environ, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            timeout=_NFT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None


def _nft(netns: str, args: list[str], stdin: str) -> str:
    tools = [shutil.which("nsenter"), shutil.which("nft") or _sbin("nft")]
    if None in tools:
        raise OperationalError(
            "cannot enforce data flows: nsenter or nft is not installed",
            hint="install util-linux and nftables (scripts/bootstrap does)",
            reference="flow-rules-failed",
        )
    nsenter, nft = tools
    try:
        done = subprocess.run(
            [str(nsenter), f"--net={netns}", str(nft), *args],
            input=stdin,
            env={**os.environ, "LC_ALL": "C"},  # messages matched below
            capture_output=True,
            text=True,
            timeout=_NFT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OperationalError(
            f"nft did not finish within {_NFT_TIMEOUT:.0f} s in {netns}",
            hint="the host may be overloaded; try again",
            reference="flow-rules-failed",
        ) from exc
    if done.returncode != 0:
        raise OperationalError(
            f"nft failed in network namespace {netns}: "
            f"{done.stderr.strip() or done.returncode}",
            hint="zerodrift needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) on the "
            "host to install a node's flow rules",
            reference="flow-rules-failed",
        )
    return done.stdout


def _sbin(tool: str) -> str | None:
    """``tool`` from /usr/sbin or /sbin, which a non-root PATH may lack."""
    for folder in ("/usr/sbin", "/sbin"):
        found = shutil.which(tool, path=folder)
        if found:
            return found
    return None
