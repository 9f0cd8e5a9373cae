"""Which commands carry credentials, and their arguments redacted for display.

Such commands are never replayed and never printed in full. What MONITOR shows (measured on Redis
7.2.4 and Valkey 9.0.0): AUTH, HELLO ... AUTH and MIGRATE ... AUTH/AUTH2 appear with "(redacted)" in
place of the user name and password; CONFIG SET and ACL SETUSER do not appear at all (admin commands
are not fed to MONITOR). Command files and AOFs carry whatever was written in them, so all are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REDACTED = b"(redacted)"  # what MONITOR itself prints in their place

# CONFIG SET parameters whose value is a secret.
SECRET_CONFIG_PARAMETERS = {
    b"requirepass": "the default user's password",
    b"masterauth": "the password a replica gives its primary",
    b"primaryauth": "Valkey's name for masterauth",
    b"tls-key-file-pass": "passphrase of the server's TLS key",
    b"tls-client-key-file-pass": "passphrase of the client TLS key",
}
# ACL SETUSER rules that hold a password or its hash (a removal names the password too).
SECRET_ACL_RULE_PREFIXES = {
    b">": "adds a password",
    b"<": "removes a password, naming it",
    b"#": "adds a password's SHA-256",
    b"!": "removes a password's SHA-256, naming it",
}
# Option -> how many secret arguments follow it (HELLO's and MIGRATE's AUTH clauses).
HELLO_AUTH_OPTIONS = {b"AUTH": 2}
MIGRATE_AUTH_OPTIONS = {b"AUTH": 1, b"AUTH2": 2}
MIGRATE_FIRST_OPTION = 6  # MIGRATE host port key db timeout [options]
MIGRATE_KEYS_OPTION = b"KEYS"  # every argument after it is a key name


def _auth(args: Sequence[bytes]) -> set[int]:
    return set(range(1, len(args)))


def _options(args: Sequence[bytes], first: int, options: dict[bytes, int], stop: bytes = b"") -> set[int]:
    positions: set[int] = set()
    index = first
    while index < len(args):
        word = args[index].upper()
        if word == stop:
            break
        width = options.get(word, 0)
        positions.update(range(index + 1, min(index + 1 + width, len(args))))
        index += 1 + width
    return positions


def _hello(args: Sequence[bytes]) -> set[int]:
    return _options(args, 2, HELLO_AUTH_OPTIONS)


def _migrate(args: Sequence[bytes]) -> set[int]:
    return _options(args, MIGRATE_FIRST_OPTION, MIGRATE_AUTH_OPTIONS, MIGRATE_KEYS_OPTION)


def _config(args: Sequence[bytes]) -> set[int]:
    if len(args) < 2 or args[1].upper() != b"SET":
        return set()
    return {value for value in range(3, len(args), 2) if args[value - 1].lower() in SECRET_CONFIG_PARAMETERS}


def _acl(args: Sequence[bytes]) -> set[int]:
    if len(args) < 2 or args[1].upper() != b"SETUSER":
        return set()
    return {index for index in range(3, len(args)) if args[index][:1] in SECRET_ACL_RULE_PREFIXES}


SECRET_FINDERS: dict[bytes, Callable[[Sequence[bytes]], set[int]]] = {
    b"AUTH": _auth, b"HELLO": _hello, b"MIGRATE": _migrate, b"CONFIG": _config, b"ACL": _acl,
}
# Commands that are about credentials whatever their arguments (a bare AUTH is still a login attempt).
ALWAYS_CREDENTIALS = frozenset({b"AUTH"})


def secret_positions(args: Sequence[bytes]) -> frozenset[int]:
    """Indexes of the arguments that hold a password, a password hash or a user name given with one."""
    finder = SECRET_FINDERS.get(args[0].upper()) if args else None
    return frozenset(finder(args)) if finder else frozenset()


def carries_credentials(args: Sequence[bytes]) -> bool:
    """True for a command that must be neither replayed nor printed in full."""
    return bool(args) and (args[0].upper() in ALWAYS_CREDENTIALS or bool(secret_positions(args)))


def redact(args: Sequence[bytes]) -> tuple[bytes, ...]:
    """The arguments with every secret replaced by "(redacted)", as MONITOR shows them; safe to print."""
    hidden = secret_positions(args)
    return tuple(REDACTED if index in hidden else arg for index, arg in enumerate(args))
