"""A producer process for the concurrency tests: `python _producer.py URL PREFIX PRODUCER COUNT`.

Adds COUNT transitions whose every field is derived from (PRODUCER, seq), so a reader can check each
one it receives for loss, duplication and tearing. Half go through `add`, half through `add_many`.
"""

from __future__ import annotations

import sys

import numpy as np

from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.service.store import RedisStore


def tagged(producer: int, seq: int, dim: int = 31) -> Transition:
    """The transition `seq` of `producer`: its contents are a function of both."""
    observation = np.random.default_rng([producer, seq]).random(dim, dtype=np.float32)
    return Transition(observation, seq % 11, seq % 2 == 0, seq / 1e4, f"producer-{producer}", float(seq),
                      reference_bytes=producer, bytes_sent=seq)


def main(argv: list[str]) -> int:
    url, prefix, producer, count = argv[0], argv[1], int(argv[2]), int(argv[3])
    buffer = TransitionBuffer(RedisStore(url, prefix))
    half = count // 2
    for seq in range(half):
        buffer.add(tagged(producer, seq))
    for start in range(half, count, 25):
        buffer.add_many([tagged(producer, seq) for seq in range(start, min(start + 25, count))])
    if not buffer.flush() or buffer.dropped:
        print(f"producer {producer}: {buffer.pending} pending, {buffer.dropped} dropped", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
