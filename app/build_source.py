"""Servers built from a Debian source package's upstream tarball (Valkey with its bundled jemalloc)."""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from app.fetch_debian import download_source_tarball
from app.fetch_support import ProvisionError, require_tools, run_build

BUILD_TOOLS = ("make", "cc")
BUILD_LOG = "build.log"


def fetch_and_build(root: Path, source: dict[str, Any], work: Path, dest: Path) -> dict[str, float]:
    """Download the tarball, build it in `work`, copy the binary into `dest`; returns the timings (s)."""
    require_tools(BUILD_TOOLS, f"building {source['package']} {source['version']} from source")
    started = time.monotonic()
    tarball = download_source_tarball(root, source["package"], source["version"], source["suite"],
                                      source["tarball"], work)
    fetched = time.monotonic()
    tree = _unpack(tarball, work / "tree")
    run_build(list(source["build"]), cwd=tree, log=work / BUILD_LOG)
    built = time.monotonic()
    binary = tree / source["binary"]
    if not binary.is_file():
        raise ProvisionError(f"the build of {source['tarball']} produced no {source['binary']}")
    shutil.copy2(binary, dest / binary.name)
    return {"fetch_s": round(fetched - started, 1), "build_s": round(built - fetched, 1)}


def _unpack(tarball: Path, into: Path) -> Path:
    """Extract the tarball; its one top folder (named after the upstream commit or version) is the tree."""
    into.mkdir()
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")  # no absolute paths or links out of the folder
    tops = [path for path in into.iterdir() if path.is_dir()]
    if len(tops) != 1:
        raise ProvisionError(f"{tarball.name} does not hold exactly one top folder")
    return tops[0]
