"""Redaction: URLs and command arguments as they may be shown. Passwords never reach any output.

Every URL the tool prints or writes goes through redact(): the password and every query value become
***, and a URL that does not parse is never echoed past its scheme and host.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def redact(url: str) -> str:
    """A URL fit for tables, JSON and logs: the password, and every query value, replaced by ***.

    A URL that does not parse is never echoed past its scheme and host."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return _unparsable(url)
    # An '@' past the host part means a password with '/', '?' or '#' in it, cut apart by the parser.
    if parts.scheme not in ("redis", "rediss", "unix") or "@" in url.split("://", 1)[-1][len(parts.netloc):]:
        return _unparsable(url)
    user = parts.username or ""
    netloc = host if not port else f"{host}:{port}"
    if parts.password is not None or "@" in parts.netloc:
        netloc = f"{user}:***@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _unparsable(url: str) -> str:
    """Scheme and host only: what precedes the first '@' may be a password."""
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0] if "@" in rest else "…"
    return f"{scheme[:10]}://{host[:60]}/… (unparsable URL, not shown)"
