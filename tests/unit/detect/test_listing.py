"""The writable-path listing: capped, but never at the cost of an executable."""

from __future__ import annotations

import os
from pathlib import Path

from zerodrift.detect.check import list_writable


def test_every_executable_is_listed_beyond_the_cap(tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / f"f{index}").write_text("data")
    script = tmp_path / "zz-implant.sh"
    script.write_text("#!/bin/sh\nid\n")  # a script, without the execute bit
    # This process's root is the host's: the listing reads tmp_path itself.
    listed = list_writable(os.getpid(), [str(tmp_path)], limit=3)
    assert listed is not None
    assert [Path(f.path).name for f in listed] == ["f0", "f1", "f2", "zz-implant.sh"]
    assert listed[-1].executable
    assert list_writable(2**22 + 1, [str(tmp_path)]) is None  # no such process
