"""The online learner: retrains the current policy on the service's transitions, off the request path.

One `Learner` per deployment. Each `step()` reads the transitions added since its cursor (saved in the
store, so a restarted learner resumes where the last one stopped) into a bounded set of recent ones.
It retrains when asked (`step(retrain=True)`, or the daemon's `retrain_requested` in `daemon:state`) or
when `min_new_transitions` arrived since the last retrain, and only if something new arrived: the same
data twice would only train the same candidate twice.

A retrain starts from the registry's current agent, trains on the oldest `1 - holdout_fraction` of the
recent set with SB3's `DQN.train(gradient_steps, batch_size)` (never `learn()`, whose schedule would
re-inflate epsilon), and scores candidate and current on the newest `holdout_fraction` it did not train
on. The training records reach SB3 through `sb3_buffer.StreamReplayBuffer` (on a private in-process
stream), which computes their rewards when sampled. The candidate is published and made current only if
it scores at least as well; otherwise the current policy keeps serving and `candidate_rejected` is logged.

Validation score: 1 - Brier score of the policy's hit probability for the rung actually uploaded, over
the held-out (observation, rung, hit) records. Only records really uploaded (`bytes_sent` set) validate,
and the held-out part starts at the newest `holdout_fraction` of them; records the daemon inferred by
monotonicity (a hit implies hits above it, a miss misses below) train but never validate. Only an
uploaded rung's hit is known, so the score checks what the policy believes where the truth is known,
rather than the reward of choices nobody tried. Brier, not log-loss: it is bounded, so one confidently
wrong record cannot outweigh the rest, and it is the squared error the training loss minimizes (rewards
divided by alpha stay in the Huber loss's quadratic zone).

`run(stop, interval_s)` is the one polling loop: `adacompress learn` runs it in its main thread, and
`LearnerThread` beside the daemon; a store outage or a retrain that cannot run yet is logged and retried.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from stable_baselines3 import DQN
from stable_baselines3.common.logger import Logger

from adacompress.agents.agent_file import AgentFile
from adacompress.agents.dqn import agent_file, dqn_from_agent
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.agents.sb3_buffer import StreamReplayBuffer
from adacompress.errors import AdaCompressError
from adacompress.service.events import log_event
from adacompress.service.registry import Registry
from adacompress.service.store import Store, StoreError

log = logging.getLogger(__name__)


class LearnerError(AdaCompressError, ValueError):
    """Learner settings that cannot work, or recent transitions a retrain cannot use."""

    code = "learner_error"


@dataclass(frozen=True)
class LearnerConfig:
    """When and how the learner retrains; every number has its unit in its name."""

    min_new_transitions: int = 500
    """New transitions since the last retrain that start one without being asked."""
    min_transitions: int = 50
    """Recent transitions needed for any retrain (fewer leave too little to train on and to validate with)."""
    holdout_fraction: float = 0.2
    """Newest share of the recent transitions kept out of training and used to validate."""
    gradient_steps: int = 200
    """SB3 gradient steps per retrain."""
    batch_size: int | None = None
    """Transitions per gradient step (default: the agent's own `batch_size`)."""
    memory_transitions: int = 10_000
    """Recent transitions kept in memory to train and validate on; older ones are forgotten."""
    read_chunk_transitions: int = 1_000
    """Transitions fetched from the stream per round trip."""


@dataclass(frozen=True)
class Retrain:
    """What one retrain did."""

    published: bool
    """Whether the candidate became current."""
    current: str
    """The version current after the retrain."""
    candidate: str
    parent: str
    candidate_score: float
    """Validation score of the candidate (1 - Brier; higher is better)."""
    parent_score: float
    trained_on: int
    held_out: int
    data_window: tuple[str, str]
    """Stream ids of the reads that brought the first and last training transitions (one read's resolution)."""

    def line(self) -> str:
        verdict = (f"published {self.candidate[:12]}" if self.published
                   else f"kept {self.current[:12]} (candidate {self.candidate[:12]} not better)")
        return (f"{verdict}: validation {self.candidate_score:.4f} (candidate) vs {self.parent_score:.4f} "
                f"(parent {self.parent[:12]}); trained on {self.trained_on}, validated on {self.held_out}")


class Learner:
    """Reads transitions from `store`, retrains the `registry`'s current agent, and publishes what validates.

    `alpha` and `beta` are the scoring weights to train for (default: the current agent's).
    """

    def __init__(self, store: Store, registry: Registry, alpha: float | None = None, beta: float | None = None,
                 config: LearnerConfig | None = None, reader: str = "learner") -> None:
        self.store, self.registry = store, registry
        self.alpha, self.beta = alpha, beta
        self.config = config or LearnerConfig()
        if not 0 < self.config.holdout_fraction < 1 or self.config.min_transitions < 2:
            raise LearnerError(f"holdout_fraction {self.config.holdout_fraction} must be between 0 and 1 "
                               f"(exclusive) and min_transitions {self.config.min_transitions} at least 2")
        self.buffer = TransitionBuffer(store, capacity=self.config.memory_transitions, reader=reader)
        self.recent: deque[tuple[str, Transition]] = deque(maxlen=self.config.memory_transitions)
        """(stream id of the read that brought it, transition), oldest first."""
        self.new_since_retrain = 0

    def step(self, retrain: bool = False) -> Retrain | None:
        """Read what is new; retrain if asked or enough arrived. The retrain's outcome, or None if none ran."""
        while batch := self.buffer.read(self.config.read_chunk_transitions):
            read_id = self.buffer.cursor
            assert read_id is not None
            self.recent.extend((read_id, t) for t in batch)
            self.new_since_retrain += len(batch)
        asked = retrain or self._retrain_requested()
        if self.new_since_retrain == 0 or not (asked or self.new_since_retrain >= self.config.min_new_transitions):
            return None
        if len(self.recent) < self.config.min_transitions:
            log_event(log, logging.INFO, "retrain_waiting", recent=len(self.recent),
                      needed=self.config.min_transitions)
            return None
        return self.retrain()

    def retrain(self) -> Retrain:
        """Train a candidate from the current agent on the recent transitions; publish it if it validates."""
        parent, policy = self.registry.current()
        agent = policy.agent
        alpha = agent.scoring.alpha if self.alpha is None else self.alpha
        beta = agent.scoring.beta if self.beta is None else self.beta
        # The known-cost head subtracts beta / alpha times the size: it must match the scoring trained for.
        agent = replace(agent, config=replace(agent.config, size_weight=beta / alpha),
                        scoring=replace(agent.scoring, alpha=alpha, beta=beta))
        usable = [(i, t) for i, t in self.recent
                  if t.observation.size == agent.observation_dim and t.rung < len(agent.ladder)]
        uploaded = [k for k, (_, t) in enumerate(usable) if t.bytes_sent is not None]
        if len(uploaded) < 2:
            raise LearnerError(f"{len(uploaded)} of {len(self.recent)} recent transitions were uploaded and fit the "
                               f"current agent ({agent.observation_dim}-d observations, {len(agent.ladder)} rungs); "
                               "a retrain needs at least 2: let transitions from the current policy arrive first")
        # Held out: everything from the newest `holdout_fraction` of the real uploads on. Records inferred by
        # monotonicity (never uploaded) train but never validate: their hit is an assumption, not an answer.
        held_out = min(len(uploaded) - 1, max(1, round(len(uploaded) * self.config.holdout_fraction)))
        split = uploaded[-held_out]
        train = usable[:split]
        validation = [t for _, t in usable[split:] if t.bytes_sent is not None]
        # Rewards in units of alpha, as offline: the same best actions, errors in the Huber loss's quadratic zone.
        model = dqn_from_agent(agent, StreamReplayBuffer, {"alpha": 1.0, "beta": beta / alpha})
        self._train(model, [t for _, t in train])
        candidate = agent_file(model, agent.ladder, agent.reference, agent.scoring, agent.config,
                               {**agent.metadata, "parent": parent}, agent.screen())
        candidate_score, parent_score = validation_score(candidate, validation), validation_score(agent, validation)
        window = (train[0][0], train[-1][0])
        published = candidate_score >= parent_score and candidate.version != parent
        if published:
            version = self.registry.publish(candidate.to_bytes(), parent=parent, data_window=window,
                                            validation_score=candidate_score)
            self.registry.set_current(version)
            current = version
        else:
            current = parent
            log_event(log, logging.WARNING, "candidate_rejected", candidate=candidate.version, current=parent,
                      candidate_score=candidate_score, current_score=parent_score, held_out=len(validation))
        self.new_since_retrain = 0  # only now: a store that failed to publish leaves the retrain to be tried again
        return Retrain(published, current, candidate.version, parent,
                       candidate_score, parent_score, len(train), len(validation), window)

    def _train(self, model: DQN, transitions: list[Transition]) -> None:
        """Put `transitions` in the model's stream buffer (a private in-process one) and take the gradient steps."""
        buffer = model.replay_buffer
        assert isinstance(buffer, StreamReplayBuffer)
        buffer.add_transitions(transitions)
        model.set_logger(Logger(folder=None, output_formats=[]))
        model.train(self.config.gradient_steps, self.config.batch_size or model.batch_size)

    def run(self, stop: threading.Event, interval_s: float,
            on_retrain: Callable[[Retrain], None] | None = None) -> None:
        """`step()` every `interval_s` until `stop` is set (checked between steps, so a retrain finishes first).

        A store that fails, or a retrain that cannot run yet, is logged and tried again next time: the loop
        serves `adacompress learn` and a thread beside the daemon, neither of which should die of a blip.
        """
        while not stop.is_set():
            try:
                result = self.step()
            except StoreError as exc:
                log_event(log, logging.WARNING, "learner_store_unavailable", error=str(exc))
            except AdaCompressError as exc:
                log_event(log, logging.WARNING, "learner_step_failed", code=exc.code, error=str(exc))
            else:
                if result is not None:
                    log_event(log, logging.INFO, "retrained", published=result.published, current=result.current,
                              candidate_score=result.candidate_score, parent_score=result.parent_score)
                    if on_retrain is not None:
                        on_retrain(result)
            stop.wait(interval_s)

    def _retrain_requested(self) -> bool:
        """The daemon's `retrain_requested` flag in the shared `daemon:state` hash."""
        flag = self.store.hget(self.store.keys.daemon_state, "retrain_requested")
        return flag is not None and flag.strip().lower() in (b"1", b"true")


class LearnerThread:
    """`Learner.run` in a background thread, for one machine where `serve` runs the learner beside the daemon."""

    def __init__(self, learner: Learner, interval_s: float = 5.0) -> None:
        self.learner, self.interval_s = learner, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=learner.run, args=(self._stop, interval_s), name="adacompress-learner",
                                        daemon=True)

    def start(self) -> LearnerThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> bool:
        """Ask the loop to end after its current step and wait; whether the thread ended within `timeout_s`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def validation_score(agent: AgentFile, transitions: list[Transition]) -> float:
    """1 - Brier score of `agent`'s hit probability for each transition's uploaded rung (1 is perfect)."""
    observations = np.stack([t.observation for t in transitions])
    rungs = np.array([t.rung for t in transitions])
    q = NumpyQNetwork(agent)(observations)[np.arange(len(transitions)), rungs]
    # Q is P(hit) minus size_weight times a size: the observation's estimate (known-cost) or the real ratio (mlp).
    if agent.config.head == "known-cost":
        sizes = observations[np.arange(len(transitions)), rungs - len(agent.ladder)]
    else:
        sizes = np.array([t.size_ratio for t in transitions], np.float32)
    probability = np.clip(q + agent.config.size_weight * sizes, 0.0, 1.0)
    hits = np.array([t.hit for t in transitions], np.float64)
    return float(1.0 - np.mean((probability - hits) ** 2))
