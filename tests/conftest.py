"""Real servers for the tests: the embedded Redis and Valkey, started once per session, always stopped."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from app import config
from app.provision import embedded_binary
from app.scenarios import SCENARIO_NAMES
from app.servers import EmbeddedServer, embedded_pair
from app.targets import Target
from app.test_runner import run_comparison


def pytest_configure(config: pytest.Config) -> None:
    """A shell that starts the suite in the background (`./rvc test &`, a CI step's `&`) ignores SIGINT
    and SIGQUIT, and every process the tests start would inherit that: the tests that press Ctrl-C on
    the tool would then test nothing. The suite's own children hear them as a user's tool would."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def embedded_servers() -> Iterator[dict[str, EmbeddedServer]]:
    """Both embedded servers, keyed by role; shared by the whole session, stopped at its end."""
    with embedded_pair("test") as started:
        yield started


@pytest.fixture(scope="session")
def trio() -> Iterator[dict[str, EmbeddedServer]]:
    """Redis, a second process of the same Redis binary (the noise control) and Valkey: what replay,
    the mirror and the explorer compare. Shared by the session; tests flush them only through FLUSHALL
    on these servers, which the tool started."""
    started: dict[str, EmbeddedServer] = {}
    try:
        for name, role in (("redis", config.BASELINE), ("redis-control", config.BASELINE),
                           ("valkey", config.CANDIDATE)):
            started[name] = EmbeddedServer(embedded_binary(role), f"trio-{name}").start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def full_run(embedded_servers: dict[str, EmbeddedServer]) -> dict:
    """One real run of every registered scenario on the shared embedded servers, for the tests that read
    a whole report document (findings, catalogue, reports)."""
    targets = [Target(name=name, url=srv.url, source="embedded", owned=True) for name, srv in embedded_servers.items()]
    return run_comparison(targets, list(SCENARIO_NAMES), timeout_s=config.DEFAULT_COMMAND_TIMEOUT_S)


@pytest.fixture(params=config.ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(embedded_servers: dict[str, EmbeddedServer], role: str) -> EmbeddedServer:
    return embedded_servers[role]


@pytest.fixture
def client(server: EmbeddedServer) -> Iterator[redis.Redis]:
    """A plain redis.Redis, exactly what the spec's run(client) contract is handed."""
    conn = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)
    yield conn
    conn.close()


@pytest.fixture
def fresh_server(request: pytest.FixtureRequest) -> Iterator[callable]:
    """Start extra servers a test may kill or freeze; every one is stopped at teardown."""
    started: list[EmbeddedServer] = []

    def start(role: str = config.CANDIDATE, **kwargs: object) -> EmbeddedServer:
        srv = EmbeddedServer(embedded_binary(role), f"fresh-{role}", **kwargs).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def run_on_two_processes(fresh_server, role: str, run, options=None) -> list[dict]:
    """One scenario run on each of two fresh processes of the same binary (the same-binary checks)."""
    runs = []
    for _ in range(2):
        srv = fresh_server(role)
        with redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=10) as conn:
            runs.append(run(conn, options))
        srv.stop()
    return runs


def scenario_keys(conn: redis.Redis, pattern: str = "rvc:*") -> list[bytes]:
    return list(conn.scan_iter(match=pattern, count=1000))
