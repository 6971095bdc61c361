"""Offline training: SB3 `learn()` over the env, with every rung's reward in the replay buffer.

Only hits cost backend calls; sizes are known locally. The env runs its outcome table in
monotone mode (the lowest surviving rung found by a galloping search from the cheapest rung, the
rest inferred), so one visit to an image yields a transition for every rung for about 2.5 calls
with the reference on the sample photos. That is what makes a few thousand calls enough, and it
makes exploration free.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from adacompress.agents.agent_file import AgentConfig, AgentFile
from adacompress.agents.dqn import agent_file, build_dqn, load_weights
from adacompress.agents.screen import Screen, can_screen, screen_columns
from adacompress.envs.jpeg_quality import JpegQualityEnv
from adacompress.errors import AdaCompressError
from adacompress.features import ProbeFeaturizer

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    steps: int
    images_resolved: int
    backend_calls: int
    stopped_by_budget: bool


class CounterfactualCallback(BaseCallback):
    """After each env step: add the image's other rungs to the replay buffer, enforce the call budget,
    checkpoint now and then."""

    def __init__(self, env: JpegQualityEnv, max_calls: int, calls_before: int,
                 save_checkpoint, checkpoint_every: int) -> None:
        super().__init__()
        self.env = env
        self.max_calls, self.calls_before = max_calls, calls_before
        self.save_checkpoint, self.checkpoint_every = save_checkpoint, checkpoint_every
        self.stopped_by_budget = False

    @property
    def calls(self) -> int:
        return self.calls_before + self.env.backend.stats.calls

    def _on_step(self) -> bool:
        info = self.locals["infos"][0]
        taken = int(np.asarray(self.locals["actions"]).reshape(-1)[0])
        add_image_transitions(self.model, self.env, info["index"], skip_action=taken)
        if self.checkpoint_every and self.num_timesteps % self.checkpoint_every == 0:
            self.save_checkpoint(self.num_timesteps)
        if self.calls + len(self.env.ladder) + 1 > self.max_calls:  # the next new image could overshoot
            self.stopped_by_budget = True
            log.warning("stopping: %d backend calls reached the budget of %d", self.calls, self.max_calls)
            return False
        return True


def add_image_transitions(model, env: JpegQualityEnv, index: int, skip_action: int | None = None) -> None:
    """One transition per rung of image `index` (the rung SB3 already stored is skipped)."""
    obs = env.features(index)[None, :]
    for action in range(len(env.ladder)):
        if action != skip_action:
            reward = env.table.outcome(index, action).reward
            model.replay_buffer.add(obs, obs, np.array([[action]]), np.array([reward], np.float32),
                                    np.array([True]), [{}])


def train_agent(env: JpegQualityEnv, config: AgentConfig, steps: int, out: Path, max_calls: int = 4000,
                checkpoint_every: int = 500, resume: bool = False, progress_bar: bool = False,
                metadata: dict | None = None) -> tuple[AgentFile, TrainReport]:
    """Train (or resume) a DQN on `env` for `steps` env steps or until `max_calls` backend calls."""
    if not env.table.monotone:
        raise AdaCompressError("training needs an env made with infer_monotone=True")
    out = Path(out)
    state_path = out.with_suffix(".state.json")
    state = json.loads(state_path.read_text()) if resume and state_path.is_file() else {}
    model = build_dqn(env, config)
    done_steps, calls_before = int(state.get("steps", 0)), int(state.get("backend_calls", 0))
    if resume and out.is_file():
        load_weights(model, AgentFile.read(out))
    env.table.resolved.update(state.get("resolved", {}))
    names = {env.table.images.name(i): i for i in range(len(env.table))}
    for name in list(env.table.resolved):  # refill the replay buffer from what earlier runs paid for
        if name in names:
            add_image_transitions(model, env, names[name])
    metadata = dict(metadata or {})

    screen: Screen | None = None  # fitted once training is over, from what it paid for

    def snapshot() -> AgentFile:
        return agent_file(model, env.ladder, env.table.reference_action, env.table.scoring, config, metadata, screen)

    def save_checkpoint(at_step: int) -> None:
        total = done_steps + at_step
        metadata.update({"steps": total, "backend_calls": calls_before + env.backend.stats.calls})
        snapshot().save(out)
        state_path.write_text(json.dumps({
            "steps": total, "backend_calls": calls_before + env.backend.stats.calls,
            "resolved": env.table.resolved,
        }))

    remaining = max(steps - done_steps, 0)
    callback = CounterfactualCallback(env, max_calls, calls_before, save_checkpoint, checkpoint_every)
    if remaining and calls_before < max_calls:
        model.learn(total_timesteps=remaining, callback=callback, progress_bar=progress_bar,
                    log_interval=10**9)
    screen = fit_screen(env, config)
    save_checkpoint(model.num_timesteps)
    report = TrainReport(done_steps + model.num_timesteps, len(env.table.resolved),
                         calls_before + env.backend.stats.calls, callback.stopped_by_budget)
    return snapshot(), report


def fit_screen(env: JpegQualityEnv, config: AgentConfig) -> Screen | None:
    """The early-exit screen (`adacompress.agents.screen`) for an agent trained on `env`, fitted on every image the
    run resolved: its observation and the real answer at the cheapest rung (the galloping search's first upload).

    None where an exit cannot be sure to pick the best rung (`can_screen`).
    """
    featurizer = env.featurizer
    if not can_screen(config.head, env.ladder, featurizer):
        return None
    assert isinstance(featurizer, ProbeFeaturizer)
    columns = screen_columns(featurizer.rungs)
    names = {env.table.images.name(i): i for i in range(len(env.table))}
    resolved = [(names[name], hits[0]) for name, hits in env.table.resolved.items() if name in names]
    if len({hit for _, hit in resolved}) < 2:
        return None  # every image kept (or lost) the answer: nothing to tell apart
    inputs = np.stack([env.features(index)[columns] for index, _ in resolved]).astype(np.float64)
    return Screen.fit(inputs, np.array([hit for _, hit in resolved]))
