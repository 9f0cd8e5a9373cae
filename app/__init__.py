"""redis-valkey-compat: finds where Redis 7.2 and Valkey 9.0 behave differently."""

__version__ = "0.1.0"
