"""redis-valkey-compat: finds where Redis 7.2 and Valkey 9.0 behave differently."""

__version__ = "0.1.0"

# Before any connection exists: hiredis must never repr a number itself (see app/resp_packing.py).
from app.resp_packing import install as _install_number_safe_packing  # noqa: E402

_install_number_safe_packing()
