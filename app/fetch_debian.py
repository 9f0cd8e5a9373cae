"""Debian packages through apt-get with a private state folder in the cache.

The machine's own apt configuration is read (for its mirror and keyring) but never changed: each
suite gets its own folder with a `.sources` file, package lists and download cache, and apt-get is
pointed at that folder alone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.fetch_support import (ProvisionError, cache_lock, command_output, install_dir, require_tools,
                               run_command, staging_dir)

MACHINE_SOURCE_FILES = ("/etc/apt/sources.list.d/*.sources",)
MACHINE_LIST_FILES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
COMPONENTS = "main"
# Suites served from the security archive, which has a URI of its own in the machine's sources.
SECURITY_SUFFIX = "-security"
UPSTREAM_RE = re.compile(r"^(?:\d+:)?(\d+(?:\.\d+)*)")


def machine_sources() -> list[dict[str, str]]:
    """The machine's Debian sources as {uri, suites, signed_by}, from deb822 and one-line files."""
    found: list[dict[str, str]] = []
    for pattern in MACHINE_SOURCE_FILES:
        for path in sorted(glob.glob(pattern)):
            for stanza in Path(path).read_text().split("\n\n"):
                fields = dict(line.split(":", 1) for line in stanza.splitlines()
                              if ":" in line and not line.startswith(("#", " ")))
                fields = {key.strip(): value.strip() for key, value in fields.items()}
                if "deb" in fields.get("Types", "").split() and fields.get("URIs"):
                    found.append({"uri": fields["URIs"].split()[0], "suites": fields.get("Suites", ""),
                                  "signed_by": fields.get("Signed-By", "")})
    for pattern in MACHINE_LIST_FILES:
        for path in sorted(glob.glob(pattern)):
            for line in Path(path).read_text().splitlines():
                match = re.match(r"^deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line)
                if match:
                    opts = dict(opt.split("=", 1) for opt in (match["opts"] or "").split() if "=" in opt)
                    found.append({"uri": match["uri"], "suites": match["suite"],
                                  "signed_by": opts.get("signed-by", "")})
    # Other vendors' sources (Node, cloud SDKs) cannot serve Debian suites.
    debian = [entry for entry in found if "debian" in entry["uri"] or "debian" in entry["signed_by"]]
    return [{**entry, "signed_by": entry["signed_by"] or DEFAULT_KEYRING} for entry in debian]


def source_for_suite(suite: str) -> dict[str, str]:
    """The machine's mirror for a suite: its security archive for *-security, else its main one."""
    want_security = suite.endswith(SECURITY_SUFFIX)
    for entry in machine_sources():
        if any(s.endswith(SECURITY_SUFFIX) for s in entry["suites"].split()) == want_security:
            return entry
    which = "security" if want_security else "main"
    raise ProvisionError(f"no Debian {which} archive in /etc/apt to fetch {suite} packages from")


def upstream_version(debian_version: str) -> str:
    """'5:7.0.15-1~deb12u10' -> '7.0.15'; '8.1.1+dfsg1-3' -> '8.1.1'."""
    match = UPSTREAM_RE.match(debian_version)
    return match.group(1) if match else debian_version


@contextmanager
def private_apt(root: Path, suite: str, types: str = "deb") -> Iterator[list[str]]:
    """apt-get options for a private state holding one suite (lists freshly updated), under its lock."""
    require_tools(("apt-get", "dpkg-deb"), f"fetching Debian {suite} packages")
    name = f"apt-{suite}-{types}"
    with cache_lock(root, name):
        state = root / "apt" / f"{suite}-{types}"
        for sub in ("parts", "lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        mirror = source_for_suite(suite)
        (state / "parts" / f"{suite}.sources").write_text(
            f"Types: {types}\nURIs: {mirror['uri']}\nSuites: {suite}\nComponents: {COMPONENTS}\n"
            f"Signed-By: {mirror['signed_by']}\n")
        opts = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={state / 'parts'}",
                "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
                "-o", "APT::Sandbox::User=root", "-qq"]
        run_command(["apt-get", *opts, "update"])
        yield opts


def download_package(root: Path, package: str, suite: str, dest: Path) -> Path:
    """The .deb of a binary package as the suite has it now, downloaded into dest."""
    with private_apt(root, suite) as opts:
        run_command(["apt-get", *opts, "download", package], cwd=dest)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise ProvisionError(f"apt-get download {package} ({suite}) produced no package")
    return debs[0]


def package_version(deb: Path) -> str:
    return command_output(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def extract_package(deb: Path, dest: Path) -> None:
    run_command(["dpkg-deb", "-x", str(deb), str(dest)])


def library_dirs(libs: tuple[dict[str, str], ...], root: Path) -> list[Path]:
    """Folders holding the shared libraries of these packages (each fetched once, into the cache)."""
    dirs: list[Path] = []
    for lib in libs:
        tree = _fetch_library(root, lib["package"], lib["suite"])
        for found in sorted({path.parent for path in tree.rglob("lib*.so*")}):
            if found not in dirs:
                dirs.append(found)
    return dirs


def _fetch_library(root: Path, package: str, suite: str) -> Path:
    name = f"{package}-{suite}"
    final = root / "debian-libs" / name
    if final.is_dir():
        return final  # only complete folders are ever moved there
    with cache_lock(root, f"lib-{name}"):
        if final.is_dir():
            return final
        with staging_dir(root, f"lib-{name}") as tmp:
            deb = download_package(root, package, suite, tmp)
            extract_package(deb, tmp / "tree")
            install_dir(tmp / "tree", final)
    return final


def download_source_tarball(root: Path, package: str, version: str, suite: str, tarball: str,
                            dest: Path) -> Path:
    """The upstream tarball of a Debian source package at an upstream version, checked by its SHA-256.

    apt-get source fetches the .dsc and Debian's changes too; only the upstream tarball is needed,
    so a missing .dsc (an archive that dropped it) is not fatal once the tarball's checksum holds.
    """
    with private_apt(root, suite, types="deb-src") as opts:
        records = _source_records(command_output(["apt-cache", *opts, "showsrc", package]))
        matching = [rec for rec in records if rec.get("Package") == package
                    and upstream_version(rec.get("Version", "")) == version]
        if not matching:
            have = ", ".join(sorted({rec.get("Version", "?") for rec in records})) or "none"
            raise ProvisionError(f"Debian {suite} no longer has {package} {version} sources (it has {have}): "
                                 "update app/data/server_versions.json")
        record = matching[0]
        rows = [line.split() for line in record.get("Checksums-Sha256", "").splitlines()]
        sums = {row[2]: row[0] for row in rows if len(row) == 3}  # "sha256 size name"
        if tarball not in sums:
            raise ProvisionError(f"Debian {suite} {package} {record['Version']} has no {tarball}")
        try:
            run_command(["apt-get", *opts, "source", "--download-only", f"{package}={record['Version']}"],
                        cwd=dest)
        except ProvisionError:
            if not (dest / tarball).exists():
                raise
    path = dest / tarball
    if not path.exists() or _sha256(path) != sums[tarball]:
        raise ProvisionError(f"{tarball} from Debian {suite} is missing or does not match its SHA-256")
    return path


def _source_records(text: str) -> list[dict[str, str]]:
    """apt-cache showsrc paragraphs as dicts; continuation lines are joined with newlines."""
    records = []
    for para in text.strip().split("\n\n"):
        record: dict[str, str] = {}
        key = ""
        for line in para.splitlines():
            if line.startswith(" ") and key:
                record[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                record[key] = value.strip()
        if record:
            records.append(record)
    return records


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_member(tree: Path, member: str, dest: Path) -> Path:
    """Copy one file of an extracted package into dest, keeping its mode."""
    source = tree / member
    if not source.is_file():
        raise ProvisionError(f"{member} is not in the package")
    target = dest / os.path.basename(member)
    shutil.copy2(source, target)
    return target
