"""NIST reference data shipped as package data: CSF 2.0, CSF 1.1, SP 800-53.

Every report is about one *framework*, which this module presents in one
shape whatever its source: functions, categories under them, and items under
those (CSF subcategories, or SP 800-53 controls grouped by family and base
control). The mappings between frameworks are loaded alongside.

Integrity first: ``SHA256SUMS`` in the data folder names every file with its
digest. A missing file, a digest mismatch, unparsable JSON or counts that do
not match the published totals stop loading with a clear error; a report is
never computed from partial reference data.

Example::

    catalogs = load_catalogs()
    csf = catalogs.framework("csf-2.0")
    print(len(csf.items))   # 106
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from zerodrift.errors import IntegrityError, Location, OperationalError

__all__ = [
    "DATA_DIR",
    "FRAMEWORKS",
    "Catalogs",
    "Framework",
    "Group",
    "Item",
    "load_catalogs",
]

DATA_DIR = Path(__file__).parent / "data"
FRAMEWORKS = ("csf-2.0", "csf-1.1", "sp800-53r5")
SUMS_FILE = "SHA256SUMS"

# The CSF 2.0 mapping to SP 800-53 is published for releases 5.1.1 and 5.2.0;
# zerodrift uses the newer one, which NIST's OLIR crosswalk confirms.
SP800_53_RELEASE = "sp800_53_rev5_2_0"

# Published totals: (functions, categories, subcategories).
_EXPECTED = {"csf-2.0": (6, 22, 106), "csf-1.1": (5, 23, 108)}


@dataclass(frozen=True)
class Group:
    """A function or a category (or an SP 800-53 family or base control)."""

    id: str
    name: str
    text: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Item:
    """One thing a report gives a status: a subcategory or an SP 800-53 control."""

    id: str
    text: str
    function: str
    category: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Framework:
    """A framework as three levels: functions, categories, items."""

    key: str
    title: str
    version: str
    functions: tuple[Group, ...]
    categories: tuple[Group, ...]
    items: tuple[Item, ...]
    _index: dict[str, Item] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update((item.id, item) for item in self.items)

    def item(self, item_id: str) -> Item | None:
        """Return the item with ``item_id``, or ``None``."""
        return self._index.get(item_id)

    def function_of(self, function_id: str) -> Group:
        """Return the function (or family) with this identifier."""
        return next(f for f in self.functions if f.id == function_id)


@dataclass(frozen=True)
class Catalogs:
    """The three frameworks and the mappings between them.

    Attributes:
        frameworks: By key (``csf-2.0``, ``csf-1.1``, ``sp800-53r5``).
        csf20_to_csf11: CSF 2.0 element -> CSF 1.1 elements (NIST's crosswalk).
        csf11_to_csf20: CSF 1.1 element -> CSF 2.0 elements (its inverse).
        csf20_to_sp800_53: CSF 2.0 element -> SP 800-53 control ids
            (release 5.2.0; whole-family references are left out).
        csf11_to_sp800_53: CSF 1.1 subcategory -> SP 800-53 control ids.
        manual: CSF 2.0 subcategories that need a person's attestation.
    """

    frameworks: dict[str, Framework]
    csf20_to_csf11: dict[str, tuple[str, ...]]
    csf11_to_csf20: dict[str, tuple[str, ...]]
    csf20_to_sp800_53: dict[str, tuple[str, ...]]
    csf11_to_sp800_53: dict[str, tuple[str, ...]]
    manual: frozenset[str]

    def framework(self, key: str) -> Framework:
        """Return a framework by key (``csf-2.0``, ``csf-1.1``, ``sp800-53r5``)."""
        return self.frameworks[key]

    def csf11_for(self, subcategories: Iterable[str]) -> tuple[str, ...]:
        """CSF 1.1 subcategories that the given CSF 2.0 subcategories evidence."""
        csf11 = self.frameworks["csf-1.1"]
        found = {
            old
            for sub in subcategories
            for old in self.csf20_to_csf11.get(sub, ())
            if csf11.item(old) is not None
        }
        return tuple(sorted(found))

    def sp800_53_for(self, subcategories: Iterable[str]) -> tuple[str, ...]:
        """SP 800-53 controls mapped from the given CSF 2.0 subcategories."""
        found = {
            c for sub in subcategories for c in self.csf20_to_sp800_53.get(sub, ())
        }
        return tuple(sorted(found))


def load_catalogs(folder: Path | None = None) -> Catalogs:
    """Load and check the reference data (cached per folder).

    Args:
        folder: Where the data files are (default: the package data).

    Raises:
        OperationalError: A file is missing or unreadable (``catalog-missing``).
        IntegrityError: A file does not match its recorded digest, is not
            valid JSON, or its counts differ from NIST's (``catalog-corrupt``).
    """
    return _load(folder or DATA_DIR)


@cache
def _load(folder: Path) -> Catalogs:
    files = _Files(folder)
    csf20 = _csf20(files.json("csf-2.0.json"))
    csf11 = _csf11(files.json("csf-1.1.json"))
    crosswalk = files.json("csf-1.1-to-2.0.json")
    to53 = files.json("csf-2.0-to-sp800-53r5.json")["mappings"]
    old_to53 = files.json("csf-1.1-to-sp800-53r5.json")["mappings"]
    csf20_to_53 = {
        key: tuple(
            r["normalized"] for r in value[SP800_53_RELEASE] if r["type"] != "family"
        )
        for key, value in to53.items()
    }
    sp800_53 = _sp800_53(files.json("sp800-53r5-controls.json"), csf20_to_53)
    manual = frozenset(files.json("manual-subcategories.json")["subcategories"])
    catalogs = Catalogs(
        frameworks={f.key: f for f in (csf20, csf11, sp800_53)},
        csf20_to_csf11=_tuples(crosswalk["csf_2_0_to_csf_1_1"]),
        csf11_to_csf20=_tuples(crosswalk["csf_1_1_to_csf_2_0"]),
        csf20_to_sp800_53=csf20_to_53,
        csf11_to_sp800_53={
            key: tuple(r["normalized"] for r in value["controls"])
            for key, value in old_to53.items()
        },
        manual=manual,
    )
    _check(catalogs)
    return catalogs


class _Files:
    """Reads data files after checking them against ``SHA256SUMS``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sums = self._read_sums()

    def _read_sums(self) -> dict[str, str]:
        text = self._bytes(SUMS_FILE).decode("utf-8", errors="replace")
        sums: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            digest, _, name = line.partition("  ")
            if len(digest) != 64 or not name:
                raise _corrupt(SUMS_FILE, f"line {number} is not '<sha256>  <file>'")
            sums[name.strip()] = digest
        return sums

    def _bytes(self, name: str) -> bytes:
        path = self.folder / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise OperationalError(
                f"NIST catalog file {path} cannot be read: {exc.strerror}",
                hint="the installation is incomplete; reinstall zerodrift",
                location=Location(str(path)),
                reference="catalog-missing",
            ) from exc

    def json(self, name: str) -> Any:
        data = self._bytes(name)
        expected = self.sums.get(name)
        if expected is None:
            raise _corrupt(name, f"it is not listed in {SUMS_FILE}")
        if hashlib.sha256(data).hexdigest() != expected:
            raise _corrupt(name, "its SHA-256 differs from the one recorded")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise _corrupt(name, f"it is not valid JSON ({exc})") from exc


def _corrupt(name: str, why: str) -> IntegrityError:
    return IntegrityError(
        f"NIST catalog file {name} is corrupt: {why}",
        hint="reinstall zerodrift; the shipped reference data was changed",
        location=Location(str(DATA_DIR / name)),
        reference="catalog-corrupt",
    )


def _tuples(mapping: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {key: tuple(values) for key, values in mapping.items()}


def _csf20(data: dict[str, Any]) -> Framework:
    functions: list[Group] = []
    categories: list[Group] = []
    items: list[Item] = []
    for function in data["functions"]:
        functions.append(Group(function["id"], function["name"], function["text"]))
        for category in function["categories"]:
            categories.append(
                Group(
                    category["id"], category["name"], category["text"], function["id"]
                )
            )
            for sub in category["subcategories"]:
                examples = tuple(e["text"] for e in sub["implementation_examples"])
                items.append(
                    Item(
                        sub["id"], sub["text"], function["id"], category["id"], examples
                    )
                )
    return Framework(
        "csf-2.0",
        "NIST Cybersecurity Framework 2.0",
        "2.0",
        tuple(functions),
        tuple(categories),
        tuple(items),
    )


def _csf11(data: dict[str, Any]) -> Framework:
    functions: list[Group] = []
    categories: list[Group] = []
    items: list[Item] = []
    for function in data["functions"]:
        functions.append(Group(function["id"], function["name"], function["text"]))
        for category in function["categories"]:
            categories.append(
                Group(
                    category["id"], category["name"], category["text"], function["id"]
                )
            )
            items.extend(
                Item(sub["id"], sub["text"], function["id"], category["id"])
                for sub in category["subcategories"]
            )
    return Framework(
        "csf-1.1",
        "Framework for Improving Critical Infrastructure Cybersecurity 1.1",
        "1.1",
        tuple(functions),
        tuple(categories),
        tuple(items),
    )


def _sp800_53(data: dict[str, Any], mapped: dict[str, tuple[str, ...]]) -> Framework:
    """Families as functions, base controls as categories, controls as items.

    Items are the catalog's current (not withdrawn) controls and enhancements,
    plus every identifier the CSF mapping cites, so no mapped evidence is
    lost: the four controls newer than the shipped 5.0.1 catalog get a title
    saying so, and a cited withdrawn control (RA-4) keeps its own.
    """
    known = {c["id"]: c for c in data["controls"]}
    cited = {c for ids in mapped.values() for c in ids}
    families = tuple(Group(f["id"], f["title"]) for f in data["families"])
    chosen = [c for c in data["controls"] if not c["withdrawn"] or c["id"] in cited]
    for missing in sorted(cited - known.keys()):
        base = missing.split("(")[0]
        chosen.append(
            {
                "id": missing,
                "title": "(not in the shipped SP 800-53 5.0.1 catalog)",
                "family": missing.split("-")[0],
                "parent": base if base != missing else None,
                "withdrawn": False,
                "sort": missing.lower(),
            }
        )
    chosen.sort(key=lambda c: _sort_key(c["id"]))
    bases = {c["parent"] or c["id"] for c in chosen}
    categories = tuple(
        Group(
            b,
            known[b]["title"] if b in known else "(not in the 5.0.1 catalog)",
            parent=b.split("-")[0],
        )
        for b in sorted(bases, key=_sort_key)
    )
    items = tuple(
        Item(
            c["id"],
            c["title"] + (" [withdrawn]" if c["withdrawn"] else ""),
            c["family"],
            c["parent"] or c["id"],
        )
        for c in chosen
    )
    version = str(data["meta"]["version"])
    return Framework(
        "sp800-53r5",
        "NIST SP 800-53 Rev. 5 (titles from catalog " + version + ")",
        version,
        families,
        categories,
        items,
    )


def _sort_key(control_id: str) -> tuple[str, int, int]:
    family, _, rest = control_id.partition("-")
    number, _, enhancement = rest.partition("(")
    return family, int(number), int(enhancement.rstrip(")") or 0)


def _check(catalogs: Catalogs) -> None:
    """Compare counts with NIST's published totals and mappings with the items."""
    for key, (n_functions, n_categories, n_items) in _EXPECTED.items():
        framework = catalogs.frameworks[key]
        counts = (
            len(framework.functions),
            len(framework.categories),
            len(framework.items),
        )
        if counts != (n_functions, n_categories, n_items):
            raise _corrupt(
                f"{key}.json",
                f"expected {n_functions}/{n_categories}/{n_items} functions/"
                f"categories/subcategories, found {counts[0]}/{counts[1]}/{counts[2]}",
            )
    csf20 = catalogs.frameworks["csf-2.0"]
    unknown = sorted(s for s in catalogs.manual if csf20.item(s) is None)
    if unknown:
        raise _corrupt(
            "manual-subcategories.json", f"unknown subcategories {', '.join(unknown)}"
        )
