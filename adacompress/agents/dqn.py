"""The learner: a stable-baselines3 DQN whose Q-network scores every rung for one image.

Images are independent, so each episode is one step and gamma is 0: Q(s, a) estimates the
immediate reward `alpha * hit - beta * bytes / reference_bytes` (AdaCompress bootstrapped with
gamma 0.95 across unrelated images; we don't). Training divides rewards by alpha: the best action
is unchanged, and errors stay inside the quadratic zone of SB3's Huber loss (with alpha > 1 the
loss turns linear and the network learns medians, i.e. overconfident hits).

The default `known-cost` head uses what is known locally: the observation ends with every rung's
estimated bytes / reference bytes, so Q(s, a) = P(hit | s, a) - (beta / alpha) * size_ratio(s, a)
with only the hit probability learned (a sigmoid over an MLP). The `mlp` head is SB3's plain one.

SB3 and torch are for training only: a trained network leaves as an `AgentFile`, and serving runs
it with `agents.qnet` in numpy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from adacompress.agents.agent_file import AgentConfig, AgentFile
from adacompress.agents.screen import PREFIX as SCREEN_PREFIX
from adacompress.agents.screen import Screen
from adacompress.codec import Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.features import DEFAULT_FEATURIZER, ends_with_size_ratios
from adacompress.scoring import Scoring


class AgentConfigError(AdaCompressError, ValueError):
    """A combination of agent settings that cannot work."""

    code = "bad_agent_config"


def _spaces_env(dim: int, low: float, high: float, n_actions: int) -> gym.Env:
    """An env carrying only the spaces, for rebuilding a DQN that will not step it."""
    env = gym.Env()
    env.observation_space = gym.spaces.Box(low, high, (dim,), np.float32)
    env.action_space = gym.spaces.Discrete(n_actions)
    return env


class KnownCostQNetwork(QNetwork):
    """Q = sigmoid(MLP(obs)) - size_weight * obs[:, -n_actions:], the last entries being size ratios."""

    def __init__(self, *args: Any, size_weight: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.size_weight = size_weight

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        hit_logits = self.q_net(self.extract_features(obs, self.features_extractor))
        return torch.sigmoid(hit_logits) - self.size_weight * obs[:, -int(self.action_space.n):]


class KnownCostPolicy(DQNPolicy):
    def __init__(self, *args: Any, size_weight: float = 1.0, **kwargs: Any) -> None:
        self.size_weight = size_weight  # read by make_q_net, which the parent constructor calls
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return KnownCostQNetwork(**net_args, size_weight=self.size_weight).to(self.device)


def build_dqn(env: gym.Env, config: AgentConfig, replay_buffer_class: type[ReplayBuffer] | None = None,
              replay_buffer_kwargs: dict[str, Any] | None = None) -> DQN:
    """SB3's DQN for `config` on `env`'s spaces; its replay buffer is SB3's unless a class is given
    (`sb3_buffer.StreamReplayBuffer` keeps it on the service's transitions stream)."""
    if config.head == "known-cost" and not ends_with_size_ratios(config.featurizer):
        raise AgentConfigError(f"the known-cost head needs a featurizer whose observation ends with size "
                               f"ratios, not {config.featurizer!r}; use one such as {DEFAULT_FEATURIZER!r}, "
                               "or the mlp head")
    policy_kwargs: dict[str, Any] = {"net_arch": list(config.net_arch)}
    if config.head == "known-cost":
        policy_kwargs["size_weight"] = config.size_weight
    return DQN(
        KnownCostPolicy if config.head == "known-cost" else "MlpPolicy", env, gamma=0.0,
        learning_rate=config.learning_rate, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, batch_size=config.batch_size, train_freq=1,
        gradient_steps=config.gradient_steps, target_update_interval=config.target_update_interval,
        exploration_fraction=0.2, exploration_final_eps=config.exploration_final_eps,
        replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
        policy_kwargs=policy_kwargs, seed=config.seed, device="cpu", verbose=0,
    )


def agent_file(model: DQN, ladder: Ladder, reference: Action, scoring: Scoring, config: AgentConfig,
               metadata: dict[str, Any] | None = None, screen: Screen | None = None) -> AgentFile:
    """The trained network (weights as float32 numpy arrays) and its early-exit `screen`, as an agent file."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.q_net.state_dict().items()}
    if screen is not None:
        arrays.update(screen.arrays())
    return AgentFile(config, ladder, reference, scoring, int(model.observation_space.shape[0]),
                     AgentFile.pack_weights(arrays), dict(metadata or {}))


def load_weights(model: DQN, agent: AgentFile) -> None:
    """Put an agent file's weights into `model`'s Q-network and its target."""
    state = {k: torch.as_tensor(v) for k, v in agent.weights().items() if not k.startswith(SCREEN_PREFIX)}
    model.q_net.load_state_dict(state)
    model.q_net_target.load_state_dict(state)


def dqn_from_agent(agent: AgentFile, replay_buffer_class: type[ReplayBuffer] | None = None,
                   replay_buffer_kwargs: dict[str, Any] | None = None) -> DQN:
    """An SB3 DQN carrying an agent file's weights (to retrain online, or to check the numpy path); the
    replay buffer as in `build_dqn`.

    The spaces are unbounded: a DQN over vectors never reads the bounds, and knowing them would mean
    building the featurizer (and its onnxruntime session) in a process that only trains.
    """
    model = build_dqn(_spaces_env(agent.observation_dim, -np.inf, np.inf, len(agent.ladder)), agent.config,
                      replay_buffer_class, replay_buffer_kwargs)
    load_weights(model, agent)
    return model
