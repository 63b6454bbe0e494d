"""Write the requirements an image may install, with markers resolved for any CPython 3.11 on Linux.

`pip wheel` evaluates environment markers against the interpreter that runs it, but the images
run a different 3.11 patch release (Debian's 3.11.2 in the local base, the newest 3.11 in the
official image), so `python_full_version < '3.11.3'` can differ between host and image. This
keeps every locked requirement (with its hashes) that holds for *some* CPython 3.11.x on Linux
and drops the markers, so the wheelhouse has a wheel for whichever patch release installs it.

    python scripts/wheelhouse_targets.py requirements.txt > download.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.markers import Marker

LINUX_CPYTHON = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_system": "Linux",
    "python_version": "3.11",
}
PATCH_RELEASES = [f"3.11.{patch}" for patch in range(15)]


def applies_to_some_target(marker: str) -> bool:
    parsed = Marker(marker)
    return any(
        parsed.evaluate({**LINUX_CPYTHON, "python_full_version": full, "implementation_version": full})
        for full in PATCH_RELEASES
    )


def requirement_entries(text: str) -> list[str]:
    """Join backslash-continued lines into one entry per requirement, dropping comments."""
    entries: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += stripped.removesuffix("\\").strip() + " "
        if not stripped.endswith("\\"):
            entries.append(current.strip())
            current = ""
    return entries


def download_list(text: str) -> list[str]:
    kept = []
    for entry in requirement_entries(text):
        requirement, _, rest = entry.partition(" --hash")
        hashes = f"--hash{rest}" if rest else ""
        name, _, marker = requirement.partition(";")
        if marker.strip() and not applies_to_some_target(marker.strip()):
            continue
        kept.append(f"{name.strip()} {hashes}".strip())
    return kept


if __name__ == "__main__":
    print("\n".join(download_list(Path(sys.argv[1]).read_text())))
