"""Render the data-flow graph as Mermaid or Graphviz DOT text."""

from __future__ import annotations

from zerodrift.identify.inventory import Inventory

__all__ = ["to_dot", "to_mermaid"]


def _quote_dot(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_mermaid(inventory: Inventory) -> str:
    """Return a Mermaid ``flowchart`` of services and their declared flows."""
    lines = ["flowchart LR"]
    seen = sorted({s.name: s.image for s in inventory.services}.items())
    for name, image in seen:
        lines.append(f'    {name}["{name}<br/>image: {image}"]')
    for edge in inventory.flows:
        label = f"{edge.port} {edge.number}/{edge.protocol}"
        lines.append(f"    {edge.source} -->|{label}| {edge.target}")
    return "\n".join(lines) + "\n"


def to_dot(inventory: Inventory) -> str:
    """Return a Graphviz ``digraph`` of services and their declared flows."""
    lines = [
        f"digraph {_quote_dot(inventory.fleet)} {{",
        "    rankdir=LR;",
        "    node [shape=box];",
    ]
    seen = sorted({s.name: s.image for s in inventory.services}.items())
    for name, image in seen:
        label = _quote_dot(f"{name}\\nimage: {image}").replace("\\\\n", "\\n")
        lines.append(f"    {_quote_dot(name)} [label={label}];")
    for edge in inventory.flows:
        label = _quote_dot(f"{edge.port} {edge.number}/{edge.protocol}")
        lines.append(
            f"    {_quote_dot(edge.source)} -> {_quote_dot(edge.target)} "
            f"[label={label}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
