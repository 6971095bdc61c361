"""Policy versions shared by every replica: publish a candidate, point `current` at it, and every process swaps.

A version is the SHA-256 of an agent's weights (`AgentFile.version`); the agent file and its metadata
(parent version, data window, validation score) live under the store's `policy_*` keys. `set_current`
moves the pointer and announces it on a pub/sub channel. A `PolicyWatcher` in each process swaps its
in-memory policy when the announcement arrives, and re-reads the pointer every `poll_s` as well, so a
lost message or a dropped subscription delays a swap by at most that long.

An agent file that is corrupt, foreign (its weights are not the version it is stored under) or built
for another ladder is refused with `PolicyRejected`, and the policy already serving keeps serving: a
bad publish must never take the service down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adacompress.agents.agent_file import AgentFile, AgentFileError
from adacompress.agents.policies import LearnedPolicy
from adacompress.codec import Ladder
from adacompress.errors import AdaCompressError
from adacompress.outage import Outage
from adacompress.service.events import log_event
from adacompress.service.store import Store, StoreError, Subscription

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 1.0
"""How often a watcher re-reads the current pointer besides listening: the longest a lost announcement delays a swap."""


_WAKE_S = 0.1
"""How often the watcher thread checks whether it was asked to stop."""


class RegistryError(AdaCompressError):
    code = "registry_error"


class PolicyNotFound(RegistryError):
    code = "policy_not_found"


class PolicyRejected(RegistryError):
    """An agent file in the registry that cannot serve here: corrupt, foreign, or for another ladder."""

    code = "policy_rejected"


@dataclass(frozen=True)
class PolicyMetadata:
    """Where a published policy came from and how it validated."""

    version: str
    parent: str | None = None
    """The version it was trained from (None for the first)."""
    data_window: tuple[str, str] | None = None
    """First and last transition (stream ids) it was trained on."""
    validation_score: float | None = None
    """Its score on recent estimates it did not train on (higher is better)."""
    published_at: float = 0.0
    """Unix time of `publish`."""

    def to_json(self) -> bytes:
        return json.dumps({"version": self.version, "parent": self.parent,
                           "data_window": list(self.data_window) if self.data_window else None,
                           "validation_score": self.validation_score, "published_at": self.published_at}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PolicyMetadata:
        try:
            fields: dict[str, Any] = json.loads(data)
            window = fields.get("data_window")
            return cls(str(fields["version"]), fields.get("parent"),
                       (str(window[0]), str(window[1])) if window else None,
                       fields.get("validation_score"), float(fields.get("published_at", 0.0)))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise RegistryError(f"policy metadata {data[:80]!r} is not ours ({exc}); publish the policy "
                                "again") from None


class Registry:
    """Policy versions in `store`; with `ladder`, only agents for that ladder are accepted."""

    def __init__(self, store: Store, ladder: Ladder | None = None) -> None:
        self.store = store
        self.keys = store.keys
        self.ladder = ladder
        self._loaded: tuple[str, LearnedPolicy] | None = None

    def publish(self, agent_file: bytes, parent: str | None = None, data_window: tuple[str, str] | None = None,
                validation_score: float | None = None) -> str:
        """Store a candidate (checked first: a blob no replica could load is refused here); its version."""
        policy = self._parse(agent_file, "the agent file to publish", None, self.ladder)
        version = policy.version
        self.store.set(self.keys.policy_blob(version), agent_file)  # the blob before its metadata: listed => loadable
        metadata = PolicyMetadata(version, parent, data_window, validation_score, time.time())
        self.store.hset(self.keys.policy_versions, version, metadata.to_json())
        log_event(log, logging.INFO, "policy_published", version=version, parent=parent,
                  validation_score=validation_score)
        return version

    def versions(self) -> list[PolicyMetadata]:
        """Every published version, oldest first."""
        stored = self.store.hgetall(self.keys.policy_versions)
        return sorted((PolicyMetadata.from_json(data) for data in stored.values()), key=lambda m: m.published_at)

    def metadata(self, version: str) -> PolicyMetadata:
        data = self.store.hget(self.keys.policy_versions, version)
        if data is None:
            raise PolicyNotFound(f"policy version {version} was never published to {self.store.description}")
        return PolicyMetadata.from_json(data)

    def set_current(self, version: str) -> None:
        """Point every replica at `version` (it must load here first) and announce it."""
        self.load(version)
        self.store.set(self.keys.policy_current, version.encode())
        self.store.publish(self.keys.policy_channel, version.encode())
        log_event(log, logging.INFO, "policy_current", version=version)

    def current_version(self) -> str | None:
        value = self.store.get(self.keys.policy_current)
        return value.decode(errors="replace") if value is not None else None

    def current(self) -> tuple[str, LearnedPolicy]:
        """The version every replica should serve, loaded; `PolicyNotFound` before any `set_current`."""
        version = self.current_version()
        if version is None:
            raise PolicyNotFound(f"no current policy in {self.store.description}; publish() one and "
                                 "set_current() its version")
        return version, self.load(version)

    def load(self, version: str, ladder: Ladder | None = None) -> LearnedPolicy:
        """The policy stored as `version`, checked against `ladder` (default: the registry's)."""
        loaded = self._loaded
        if loaded is not None and loaded[0] == version:
            policy = loaded[1]
        else:
            blob = self.store.get(self.keys.policy_blob(version))
            if blob is None:
                raise PolicyNotFound(f"policy version {version} has no agent file in {self.store.description}; "
                                     "publish() it before pointing current at it")
            policy = self._parse(blob, f"policy version {version} in {self.store.description}", version, None)
            self._loaded = (version, policy)
        _check_ladder(policy, ladder or self.ladder, f"policy version {version}")
        return policy

    def _parse(self, blob: bytes, source: str, version: str | None, ladder: Ladder | None) -> LearnedPolicy:
        try:
            agent = AgentFile.from_bytes(blob, source)
        except AgentFileError as exc:
            raise PolicyRejected(f"{exc}; publish a good agent file and point current at it") from exc
        if version is not None and agent.version != version:
            raise PolicyRejected(f"{source} holds the weights of version {agent.version}, not its own (a foreign "
                                 "or misfiled blob); publish the agent file so it is stored under its version")
        try:
            policy = LearnedPolicy(agent, name=f"registry:{agent.version[:12]}")
        except AdaCompressError as exc:
            raise PolicyRejected(f"{source} cannot serve here ({exc})") from exc
        _check_ladder(policy, ladder, source)
        return policy

    def watch(self, poll_s: float = DEFAULT_POLL_S,
              on_change: Callable[[str, LearnedPolicy], None] | None = None) -> PolicyWatcher:
        """A started `PolicyWatcher` for this process."""
        return PolicyWatcher(self, poll_s, on_change).start()


def _check_ladder(policy: LearnedPolicy, ladder: Ladder | None, source: str) -> None:
    if ladder is not None and policy.ladder != ladder:
        raise PolicyRejected(f"{source} chooses from the ladder {policy.ladder.spec}, this service serves "
                             f"{ladder.spec} (its transitions' rungs would mean other actions); train it on "
                             "this ladder")


class PolicyWatcher:
    """The policy this process serves, kept in step with the registry by a background thread.

    `policy` is None until a current version loads. A version that fails to load is logged once
    (event `policy_rejected`), kept in `last_error`, and retried at each poll in case it is
    republished; meanwhile the served policy does not change.
    """

    def __init__(self, registry: Registry, poll_s: float = DEFAULT_POLL_S,
                 on_change: Callable[[str, LearnedPolicy], None] | None = None) -> None:
        self.registry, self.poll_s, self.on_change = registry, poll_s, on_change
        self.last_error: RegistryError | None = None
        self._served: tuple[str, LearnedPolicy] | None = None
        self._reported: str | None = None
        self._outage = Outage(f"policy registry in {registry.store.description}", poll_s,
                              "the current policy keeps serving", log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> str | None:
        served = self._served
        return served[0] if served else None

    @property
    def policy(self) -> LearnedPolicy | None:
        served = self._served
        return served[1] if served else None

    def start(self) -> PolicyWatcher:
        """Load the current version now, then follow changes in the background."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="adacompress-policy-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5.0)

    def __enter__(self) -> PolicyWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self) -> bool:
        """Swap to the current version if it changed and loads; True when it swapped. Never raises."""
        try:
            version = self.registry.current_version()
            served = self._served
            if version is None or (served is not None and served[0] == version):
                self._outage.recovered()
                return False
            # Without a configured ladder, the first policy served fixes it: the stream's rungs must keep their meaning.
            ladder = served[1].ladder if served is not None and self.registry.ladder is None else None
            policy = self.registry.load(version, ladder)
        except StoreError as exc:
            self._outage.failed(exc)
            return False
        except RegistryError as exc:
            self.last_error = exc
            if self._reported != version:
                self._reported = version
                log_event(log, logging.ERROR, "policy_rejected", version=version, code=exc.code,
                          serving=self.version, error=str(exc))
            return False
        self._outage.recovered()
        self._served, self.last_error, self._reported = (version, policy), None, None
        log_event(log, logging.INFO, "policy_swapped", version=version, previous=served[0] if served else None)
        if self.on_change is not None:
            try:
                self.on_change(version, policy)
            except Exception as exc:  # a listener's bug must not stop the watcher
                log_event(log, logging.ERROR, "policy_listener_failed", version=version, error=repr(exc))
        return True

    def _run(self) -> None:
        subscription: Subscription | None = None
        next_poll = next_subscribe = 0.0
        while not self._stop.is_set():
            if subscription is None and time.monotonic() >= next_subscribe:
                try:
                    subscription = self.registry.store.subscribe(self.registry.keys.policy_channel)
                    next_poll = 0.0  # look now: something may have been announced while nobody listened
                except StoreError as exc:
                    self._outage.failed(exc)
                    next_subscribe = time.monotonic() + self.poll_s
            # Short waits, so stop() takes effect at once whatever poll_s is.
            wait_s = max(0.0, min(next_poll - time.monotonic(), _WAKE_S))
            announced = False
            try:
                if subscription is None:
                    self._stop.wait(wait_s)
                else:
                    announced = subscription.get_message(wait_s) is not None
            except StoreError as exc:
                self._outage.failed(exc)
                if subscription is not None:
                    subscription.close()
                subscription, next_subscribe = None, time.monotonic() + self.poll_s
                continue
            if self._stop.is_set():
                break
            if announced or time.monotonic() >= next_poll:
                self.refresh()
                next_poll = time.monotonic() + self.poll_s
        if subscription is not None:
            subscription.close()
