"""Many shuffled orders through the real daemon, fast: each photo probed once and each upload's answer asked once.

Five orders say little about a controller: a dial set exactly at the target still lands outside 1 point of it in
4% of 700-image streams, so "5 of 5" fails one time in five by chance alone. Here the real `Daemon`, the real
rules and the real policy serve hundreds of orders. Two things are remembered across orders, both exact:
the probe's observation of each photo (the policy is deterministic, so probing it again gives the same numbers),
and the backend's answer to each upload's bytes (a real answer, asked once; estimates' reference uploads too, which
are always the same bytes here because nothing drifts). `bench_hold_target.py` checks that the first orders
replayed this way serve exactly what the live runs served.
"""

from __future__ import annotations

import hashlib
import types
from typing import Any

import numpy as np

from adacompress.agents.policies import LearnedPolicy, load_policy
from adacompress.agents.replay_buffer import TransitionBuffer
from adacompress.cloud_backends.base import Recognition, VisionBackend
from adacompress.images import ImageSet
from adacompress.service.daemon import Daemon
from adacompress.service.rules import Rules
from adacompress.service.store import EmbeddedStore
from adacompress.upload import Upload


class RecordedAnswers:
    """A backend that asks the real one once per distinct upload and answers repeats from memory."""

    def __init__(self, backend: VisionBackend) -> None:
        self.backend = backend
        self.answers: dict[bytes, Recognition] = {}

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        key = hashlib.blake2b(image_bytes, digest_size=16).digest()
        if key not in self.answers:
            self.answers[key] = self.backend.recognize(image_bytes, use_cache=False)
        return self.answers[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


def remembering_policy(policy_spec: str) -> LearnedPolicy:
    """The policy, with its probe's two stages remembered per `Upload` (same upload object, same numbers)."""
    policy = load_policy(policy_spec)
    featurizer = policy.featurizer
    first_look, observe = featurizer.first_look, featurizer.observe
    firsts: dict[int, Any] = {}
    observations: dict[int, np.ndarray] = {}

    def remembered_first_look(self: Any, upload: Upload) -> Any:
        if id(upload) not in firsts:
            firsts[id(upload)] = first_look(upload)
        return firsts[id(upload)]

    def remembered_observe(self: Any, upload: Upload, first: Any = None) -> np.ndarray:
        if id(upload) not in observations:
            observations[id(upload)] = observe(upload, first)
        return observations[id(upload)]

    featurizer.first_look = types.MethodType(remembered_first_look, featurizer)  # type: ignore[method-assign]
    featurizer.observe = types.MethodType(remembered_observe, featurizer)  # type: ignore[method-assign]
    return policy


class ManyOrders:
    """Serve whole orders of one set of uploads through a fresh daemon each, sharing the remembered probe and
    answers. `truths[i]` is the upload whose answer request i is scored against (what the client would have sent)."""

    def __init__(self, uploads: list[Upload], truths: list[bytes], policy: LearnedPolicy,
                 backend: RecordedAnswers) -> None:
        self.uploads, self.truths, self.policy, self.backend = uploads, truths, policy, backend

    @classmethod
    def of_images(cls, images: ImageSet, policy_spec: str, backend: VisionBackend) -> ManyOrders:
        """Every image of the set as it is, scored against its own reference encoding."""
        policy = remembering_policy(policy_spec)
        uploads = [Upload(images.load(i), images.name(i)) for i in range(len(images))]
        return cls(uploads, [u.encoded(policy.reference).data for u in uploads], policy, RecordedAnswers(backend))

    def serve(self, rules: Rules, order: list[int], seed: int) -> dict[str, np.ndarray]:
        """Per request of `order`: kept (the caller's answer against the truth's), estimated, bytes sent."""
        daemon = Daemon(self.policy, self.backend, self.policy.scoring, TransitionBuffer(EmbeddedStore()), rules,
                        seed)
        kept, estimated, sent, reference = [], [], [], []
        try:
            for index in order:
                served = daemon.handle(self.uploads[index])
                truth = self.backend.recognize(self.truths[index])
                kept.append(self.policy.scoring.hit(truth, served.recognition))
                estimated.append(served.estimated)
                sent.append(served.decision.bytes)
                reference.append(served.decision.reference_bytes)
        finally:
            daemon.close()
        return {"kept": np.array(kept), "estimated": np.array(estimated), "bytes": np.array(sent, dtype=float),
                "reference_bytes": np.array(reference, dtype=float)}
