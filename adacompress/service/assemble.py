"""Put a serving process together: store, registry, policy, daemon, decision workers, learner, watcher.

One place builds what `adacompress serve`, the tests and the demo run, so they serve the same thing.
The registry is the fleet's truth: a process that finds a current version serves it, and one that finds
none publishes its `policy` (a learned agent) so the learner and other replicas start from the same one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from adacompress.agents.policies import LearnedPolicy, Policy, policy_from_spec
from adacompress.agents.replay_buffer import TransitionBuffer
from adacompress.cloud_backends.acceptance import check_ladder
from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER
from adacompress.scoring import Scoring
from adacompress.service.daemon import Daemon
from adacompress.service.decisions import DecisionPool
from adacompress.service.events import log_event
from adacompress.service.proxy import ProxyConfig, ProxyService
from adacompress.service.registry import Registry
from adacompress.service.rules import Rules, rules_from_name
from adacompress.service.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """Everything `adacompress serve` is told."""

    backend: str = "local"
    policy: str = "pretrained:local-lite2"
    redis_url: str | None = None
    """None: `ADACOMPRESS_REDIS_URL`, else the embedded store."""
    prefix: str | None = None
    workers: int = 1
    """Decision worker processes (0: decide in threads of the server process)."""
    onnx_threads: int = 1
    """onnxruntime threads per worker."""
    rules: str = "adacompress"
    target_accuracy: float | None = None
    learn: bool = False
    """Run the learner in this process (one machine); else run `adacompress learn` beside."""
    learn_interval_s: float = 5.0
    seed: int = 0
    cache: bool = True
    """Cache cloud answers by the bytes sent (off: every answer from the provider, as a benchmark needs)."""


def backend_options(options: ServeOptions) -> dict:
    """Options for a cloud backend's stack: the service's Redis and prefix for its response cache and shared
    provider limits too (replicas started with the same `--redis` share them), and `cache=off` when asked. The
    local backend has no stack, so it takes none."""
    if options.backend.startswith("local"):
        return {}
    shared = {"redis_url": options.redis_url, "cache_prefix": options.prefix}
    return {k: v for k, v in shared.items() if v is not None} | ({} if options.cache else {"cache": "off"})


def assemble(options: ServeOptions, config: ProxyConfig | None = None, backend: VisionBackend | None = None,
             store: Store | None = None, rules: Rules | None = None) -> ProxyService:
    """The service `options` describe; `backend`, `store` and `rules` may be given ready-made (tests)."""
    store = store if store is not None else open_store(options.redis_url, options.prefix)
    if backend is None:
        backend = create_backend(options.backend, **backend_options(options))
    registry = Registry(store)
    policy = _current_policy(registry, policy_from_spec(options.policy, DEFAULT_LADDER), backend)
    scoring = policy.scoring if isinstance(policy, LearnedPolicy) else Scoring()
    daemon = Daemon(policy, backend, scoring, TransitionBuffer(store),
                    rules or rules_from_name(options.rules, options.target_accuracy), options.seed)
    pool = DecisionPool(options.workers, options.onnx_threads)
    service = ProxyService(daemon, backend, pool, config or ProxyConfig(), store)
    if isinstance(policy, LearnedPolicy):
        watcher = registry.watch(on_change=lambda version, swapped: daemon.set_policy(swapped))
        service.on_close.append(watcher.stop)
    if options.learn:
        service.on_close.append(_start_learner(store, registry, options.learn_interval_s))
    return service


def _current_policy(registry: Registry, configured: Policy, backend: VisionBackend) -> Policy:
    """The registry's current policy; else `configured`, published as current when it is a learned one.

    Either is refused (`LadderError`) when `backend` cannot take one of its actions, before it is published.
    """
    current = registry.current_version()
    if current is not None:
        version, policy = registry.current()
        check_ladder([*policy.ladder.actions, policy.reference], backend,
                     f"the registry's current policy {version[:12]}")
        if version != configured.version:
            log_event(log, logging.INFO, "serving_registry_policy", version=version, configured=configured.version)
        return policy
    check_ladder([*configured.ladder.actions, configured.reference], backend, f"policy {configured.name}")
    if isinstance(configured, LearnedPolicy):
        registry.set_current(registry.publish(configured.agent.to_bytes()))
    return configured


def _start_learner(store: Store, registry: Registry, interval_s: float):
    """The learner in a thread of this process; torch kept to one thread beside the request path."""
    import torch

    from adacompress.agents.learner import Learner, LearnerThread

    torch.set_num_threads(1)
    thread = LearnerThread(Learner(store, registry), interval_s).start()
    return thread.stop
