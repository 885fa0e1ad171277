"""Identify: the asset inventory, data-flow graph and their exports."""

from zerodrift.identify.inventory import (
    FlowEdge,
    ImageAsset,
    Inventory,
    ServiceAsset,
    build_inventory,
)

__all__ = ["FlowEdge", "ImageAsset", "Inventory", "ServiceAsset", "build_inventory"]
