"""`decide()` off the event loop: in worker processes, so decode, probe and encode use every core.

Decoding, resizing and onnxruntime release the GIL only in places; one process serving many requests
runs their decisions one at a time. A `DecisionPool` with `workers >= 1` sends each decision to a pool
of spawned processes (never forked: onnxruntime sessions, httpx and boto3 clients are not fork-safe),
each with its own onnxruntime threads (`onnx_threads`, spinning off) so workers x threads stays within
the cores. `workers = 0` decides in a thread of this process: tests, and machines with one core.

A policy travels with each task as its spec or agent-file bytes (about 20 kB) and is built once per
worker per version, so a swap reaches every worker with the next request and no worker serves a stale
version. A `BadImage` raised in a worker comes back as itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from adacompress.agents.policies import Decision, LearnedPolicy, Policy, load_policy, policy_from_spec
from adacompress.codec import DEFAULT_LADDER
from adacompress.images import DecodeLimits


@dataclass(frozen=True)
class PolicySource:
    """What a worker needs to build the policy the daemon serves: learned-agent bytes, or a baseline's spec."""

    version: str
    agent_file: bytes | None
    spec: str | None

    @classmethod
    def of(cls, policy: Policy) -> PolicySource:
        if isinstance(policy, LearnedPolicy):
            return cls(policy.version, policy.agent.to_bytes(), None)
        return cls(policy.version, None, policy.version)

    def build(self) -> Policy:
        if self.agent_file is not None:
            return load_policy(self.agent_file)
        assert self.spec is not None
        return policy_from_spec(self.spec, DEFAULT_LADDER)


_policies: dict[str, Policy] = {}
"""This worker's policies by version (a handful at most: old versions are dropped on a swap)."""


def _init_worker(onnx_threads: int) -> None:
    os.environ["ADACOMPRESS_ONNX_THREADS"] = str(onnx_threads)
    os.environ.setdefault("ADACOMPRESS_ONNX_SPINNING", "0")


def _decide(source: PolicySource, data: bytes, size_weight: float | None, min_rung: int,
            limits: DecodeLimits) -> Decision:
    policy = _policies.get(source.version)
    if policy is None:
        _policies.clear()
        policy = _policies[source.version] = source.build()
    policy.limits = limits
    return policy.decide(data, size_weight, min_rung)


class DecisionPool:
    """Runs `decide()` for the event loop in `workers` processes (0: in threads of this process)."""

    def __init__(self, workers: int, onnx_threads: int = 1, threads: int = 4) -> None:
        self.workers = workers
        self._executor: Executor
        if workers > 0:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                 initargs=(onnx_threads,))
        else:
            self._executor = ThreadPoolExecutor(threads, thread_name_prefix="adacompress-decide")
        self._source: PolicySource | None = None

    async def decide(self, policy: Policy, data: bytes, size_weight: float | None, min_rung: int = 0) -> Decision:
        """`policy.decide(data, size_weight, min_rung)`, in a worker."""
        loop = asyncio.get_running_loop()
        if self.workers == 0:
            return await loop.run_in_executor(self._executor, policy.decide, data, size_weight, min_rung)
        return await loop.run_in_executor(self._executor, _decide, self._source_of(policy), data, size_weight,
                                          min_rung, policy.limits)

    def _source_of(self, policy: Policy) -> PolicySource:
        """The policy as workers build it, serialized once per version rather than once per request."""
        source = self._source
        if source is None or source.version != policy.version:
            source = self._source = PolicySource.of(policy)
        return source

    def warm_up(self, policy: Policy, sample: bytes) -> None:
        """Build the policy (and its onnxruntime sessions) in every worker before the first request."""
        if self.workers == 0:
            policy.decide(sample)
            return
        source = self._source_of(policy)
        # Twice as many tasks as workers: a worker that finishes first may take two, the rest still get one.
        futures = [self._executor.submit(_decide, source, sample, None, 0, policy.limits)
                   for _ in range(2 * self.workers)]
        for future in futures:
            future.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
