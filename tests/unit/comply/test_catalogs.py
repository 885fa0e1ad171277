from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from zerodrift.comply.catalogs import DATA_DIR, load_catalogs
from zerodrift.errors import IntegrityError, OperationalError


def test_csf_2_0_has_the_published_counts() -> None:
    csf = load_catalogs().framework("csf-2.0")
    assert (len(csf.functions), len(csf.categories), len(csf.items)) == (6, 22, 106)
    assert sum(len(item.examples) for item in csf.items) == 363
    per_function = {
        f.id: (
            sum(1 for c in csf.categories if c.parent == f.id),
            sum(1 for i in csf.items if i.function == f.id),
        )
        for f in csf.functions
    }
    assert per_function == {
        "GV": (6, 31),
        "ID": (3, 21),
        "PR": (5, 22),
        "DE": (2, 11),
        "RS": (4, 13),
        "RC": (2, 8),
    }
    assert all(item.examples for item in csf.items)


def test_csf_1_1_has_the_published_counts() -> None:
    csf = load_catalogs().framework("csf-1.1")
    assert (len(csf.functions), len(csf.categories), len(csf.items)) == (5, 23, 108)
    assert csf.item("ID.AM-1") is not None
    assert csf.item("ID.AM-01") is None


def test_crosswalk_and_mappings_have_the_published_counts() -> None:
    catalogs = load_catalogs()
    assert len(catalogs.csf20_to_csf11) == 115
    assert sum(len(v) for v in catalogs.csf20_to_csf11.values()) == 185
    # RC.CO-2 is the one CSF 1.1 subcategory no CSF 2.0 element cites.
    cited = {old for olds in catalogs.csf20_to_csf11.values() for old in olds}
    uncited = {i.id for i in catalogs.framework("csf-1.1").items if i.id not in cited}
    assert uncited == {"RC.CO-2"}
    # 746 relationships in release 5.2.0, 3 of them to whole families.
    assert len(catalogs.csf20_to_sp800_53) == 108
    assert sum(len(v) for v in catalogs.csf20_to_sp800_53.values()) == 743
    assert len(catalogs.csf11_to_sp800_53) == 108
    assert sum(len(v) for v in catalogs.csf11_to_sp800_53.values()) == 495


def test_sp800_53_keeps_every_mapped_control() -> None:
    catalogs = load_catalogs()
    sp = catalogs.framework("sp800-53r5")
    assert len(sp.functions) == 20
    cited = {c for ids in catalogs.csf20_to_sp800_53.values() for c in ids}
    assert all(sp.item(c) is not None for c in cited)
    newer, withdrawn, enhancement = (sp.item(c) for c in ("IA-13", "RA-4", "AC-2(3)"))
    assert newer is not None
    assert "not in the shipped" in newer.text
    assert withdrawn is not None
    assert withdrawn.text.endswith("[withdrawn]")
    assert enhancement is not None
    assert enhancement.category == "AC-2"
    # The catalog's 1,007 current controls, plus the 4 newer ones and RA-4.
    assert len(sp.items) == 1007 + 4 + 1


def test_derived_mappings_of_a_subcategory() -> None:
    catalogs = load_catalogs()
    assert catalogs.csf11_for(["ID.AM-01", "PR.PS-04"]) == ("ID.AM-1", "PR.PT-1")
    assert "CM-8" in catalogs.sp800_53_for(["ID.AM-01"])


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA_DIR, folder)
    return folder


def test_changed_byte_is_reported_as_corrupt(data_copy: Path) -> None:
    path = data_copy / "csf-2.0.json"
    path.write_bytes(path.read_bytes().replace(b"GOVERN", b"G0VERN", 1))
    with pytest.raises(IntegrityError) as caught:
        load_catalogs(data_copy)
    assert caught.value.reference == "catalog-corrupt"
    assert "csf-2.0.json" in caught.value.message


def test_missing_file_is_reported(data_copy: Path) -> None:
    (data_copy / "csf-1.1.json").unlink()
    with pytest.raises(OperationalError) as caught:
        load_catalogs(data_copy)
    assert caught.value.reference == "catalog-missing"
    assert "csf-1.1.json" in caught.value.message


def _rewrite(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    digest = hashlib.sha256(data).hexdigest()
    lines = [
        f"{digest}  {name}" if line.endswith(f"  {name}") else line for line in sums
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_wrong_counts_are_reported_even_with_a_matching_digest(
    data_copy: Path,
) -> None:
    data = json.loads((data_copy / "csf-2.0.json").read_bytes())
    data["functions"][0]["categories"][0]["subcategories"].pop()
    _rewrite(data_copy, "csf-2.0.json", json.dumps(data).encode())
    with pytest.raises(IntegrityError, match="105"):
        load_catalogs(data_copy)


def test_invalid_json_is_reported(data_copy: Path) -> None:
    _rewrite(data_copy, "csf-1.1-to-2.0.json", b"{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        load_catalogs(data_copy)


def test_file_not_listed_in_sums_is_refused(data_copy: Path) -> None:
    sums = data_copy / "SHA256SUMS"
    lines = [x for x in sums.read_text().splitlines() if "csf-1.1.json" not in x]
    sums.write_text("\n".join(lines) + "\n")
    with pytest.raises(IntegrityError, match="not listed"):
        load_catalogs(data_copy)


def test_shipped_titles_derive_from_the_catalog(tmp_path: Path) -> None:
    source = Path(__file__).parents[3] / "../shared/data/nist"
    catalog = source / "sp800-53r5-catalog-5.0.1.json"
    if not catalog.exists():
        pytest.skip("the full SP 800-53 catalog is not beside this checkout")
    import subprocess
    import sys

    script = Path(__file__).parents[3] / "scripts/derive-sp800-53-controls"
    target = tmp_path / "controls.json"
    subprocess.run([sys.executable, str(script), str(catalog), str(target)], check=True)
    assert target.read_bytes() == (DATA_DIR / "sp800-53r5-controls.json").read_bytes()
