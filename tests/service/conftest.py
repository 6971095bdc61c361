"""Service fixtures: private redis-servers a test may stop and restart, stores under unique prefixes, agent files.

The servers are real (`redis-server` on a free loopback port, no persistence), so outages are real
refused connections, not mocks. Agent files are built from numpy weights, so nothing here needs torch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from adacompress.agents.agent_file import AgentConfig, AgentFile
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Ladder
from adacompress.features import make_featurizer
from adacompress.scoring import Scoring
from adacompress.service.proxy_runner import free_port
from adacompress.service.store import EmbeddedStore, RedisStore, Store

# The proxy tests share `_proxy_server.py`; under --import-mode=importlib nothing puts this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))


def poll_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


class RedisServer:
    """A private `redis-server` on its own port; `stop()` kills it, `start()` brings it back on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server must be installed (apt-get install redis-server)"
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.directory)], stdout=subprocess.DEVNULL)
        client = self.client()

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, f"redis-server on {self.port} exited"
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        assert poll_until(answers, 10.0, 0.02), f"redis-server on port {self.port} did not answer within 10 s"
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float], bool]:
    """`wait_for(condition, timeout_s) -> bool`: a deadline, never a sleep standing in for an assertion."""
    return poll_until


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private server for the tests that do not stop it; each test keeps to its own prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis-shared")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to kill and restart."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"adacompress-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=["redis", "embedded"])
def store(request: pytest.FixtureRequest, prefix: str) -> Iterator[Store]:
    """The same tests on Redis and on the embedded store."""
    if request.param == "embedded":
        yield EmbeddedStore(prefix)
        return
    server: RedisServer = request.getfixturevalue("shared_redis")
    opened = RedisStore(server.url, prefix)
    yield opened
    opened.close()


def agent_file(seed: int = 0, ladder: Ladder = DEFAULT_LADDER, hidden: int = 8) -> AgentFile:
    """A known-cost agent on the Lite1 probe with seeded random weights: a valid, distinct version per seed."""
    config = AgentConfig(net_arch=(hidden,), featurizer="probe:lite1", seed=seed)
    dim = make_featurizer(config.featurizer, ladder).dim
    rng = np.random.default_rng(seed)
    weights = {"q_net.0.weight": rng.normal(size=(hidden, dim)).astype(np.float32),
               "q_net.0.bias": rng.normal(size=hidden).astype(np.float32),
               "q_net.2.weight": rng.normal(size=(len(ladder), hidden)).astype(np.float32),
               "q_net.2.bias": rng.normal(size=len(ladder)).astype(np.float32)}
    return AgentFile(config, ladder, REFERENCE_ACTION, Scoring(), dim, AgentFile.pack_weights(weights),
                     {"seed": seed})


@pytest.fixture
def make_agent() -> Callable[..., AgentFile]:
    """`make_agent(seed, ladder=DEFAULT_LADDER) -> AgentFile`."""
    return agent_file
