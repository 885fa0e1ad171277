"""Export the inventory as a CycloneDX 1.6 BOM of services and dependencies.

Each service (per environment) is a CycloneDX ``service`` whose dependencies
are the services it talks to and the image it runs; images are ``container``
components. The BOM is validated against the CycloneDX 1.6 JSON schema
before it is returned, so a consumer never receives an invalid document.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from cyclonedx.model import DataClassification, DataFlow, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.service import Service
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from zerodrift import __version__
from zerodrift.identify.inventory import Inventory

__all__ = ["to_cyclonedx"]

_NAMESPACE = uuid.UUID("6f1b3c52-5d0e-4f55-9f3a-2a4f0d7d1e11")


def to_cyclonedx(inventory: Inventory, *, timestamp: datetime) -> str:
    """Return the inventory as CycloneDX 1.6 JSON text.

    The serial number derives from the spec digest and the environments, so
    the same inventory always yields the same BOM for a given timestamp.

    Raises:
        RuntimeError: The produced BOM fails schema validation (a bug).
    """
    bom = Bom(
        serial_number=uuid.uuid5(
            _NAMESPACE, inventory.spec_digest + "/" + ",".join(inventory.environments)
        )
    )
    bom.metadata.timestamp = timestamp
    bom.metadata.component = root = Component(
        name=inventory.fleet,
        type=ComponentType.PLATFORM,
        bom_ref=f"fleet:{inventory.fleet}",
        properties=[
            Property(name="zerodrift:spec-digest", value=inventory.spec_digest),
            Property(name="zerodrift:version", value=__version__),
        ],
    )
    images = {
        img.name: Component(
            name=img.name,
            type=ComponentType.CONTAINER,
            bom_ref=f"image:{img.name}",
            version=img.digest,
            # The package URL of an OCI image names its manifest digest.
            purl=None
            if img.digest is None
            else PackageURL("oci", name=img.name, version=img.digest),
            properties=[Property(name="zerodrift:base", value=img.base)],
        )
        for img in inventory.images
    }
    for component in images.values():
        bom.components.add(component)

    services = {}
    for asset in inventory.services:
        ref = f"service:{asset.environment}/{asset.name}"
        flows = [f for f in inventory.flows if f.source == asset.name]
        services[(asset.environment, asset.name)] = Service(
            name=asset.name,
            group=asset.environment,
            bom_ref=ref,
            data=[
                DataClassification(
                    flow=DataFlow.OUTBOUND, classification=f"{f.target}:{f.port}"
                )
                for f in flows
            ]
            or None,
            properties=[
                Property(name="zerodrift:environment", value=asset.environment),
                Property(name="zerodrift:image", value=asset.image),
                Property(name="zerodrift:replicas", value=str(asset.replicas)),
                *[Property(name="zerodrift:port", value=p) for p in asset.ports],
            ],
        )
    for service in services.values():
        bom.services.add(service)

    deps = [
        Dependency(
            ref=root.bom_ref,
            dependencies=[Dependency(ref=s.bom_ref) for s in services.values()],
        )
    ]
    for (env, name), service in services.items():
        asset = next(
            a for a in inventory.services if a.environment == env and a.name == name
        )
        targets = [
            services[(env, f.target)].bom_ref
            for f in inventory.flows
            if f.source == name
        ]
        refs = [images[asset.image].bom_ref, *targets]
        deps.append(
            Dependency(
                ref=service.bom_ref, dependencies=[Dependency(ref=r) for r in refs]
            )
        )
    for dependency in deps:
        bom.dependencies.add(dependency)

    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise RuntimeError(f"produced an invalid CycloneDX document: {error}")
    return text
