"""The Q-network at inference: a small numpy MLP read from an agent's weights, no torch needed.

It reproduces SB3's `QNetwork` (Linear/ReLU layers named `q_net.0`, `q_net.2`, ...) and our
known-cost head (Q = sigmoid(MLP(obs)) - size_weight * the observation's last n size ratios).
"""

from __future__ import annotations

import numpy as np

from adacompress.agents.agent_file import AgentFile, AgentFileError


class NumpyQNetwork:
    """Q-values for a batch of observations, in float32 like the network that was trained."""

    def __init__(self, agent: AgentFile) -> None:
        weights = agent.weights()
        indices = sorted({int(name.split(".")[1]) for name in weights if name.startswith("q_net.")})
        try:
            self.layers = [(weights[f"q_net.{i}.weight"].astype(np.float32).T,
                            weights[f"q_net.{i}.bias"].astype(np.float32)) for i in indices]
        except KeyError as exc:
            raise AgentFileError(f"agent weights lack {exc}") from exc
        if not self.layers or self.layers[0][0].shape[0] != agent.observation_dim \
                or self.layers[-1][0].shape[1] != len(agent.ladder):
            shapes = [w.shape for w, _ in self.layers]
            raise AgentFileError(f"agent weights {shapes} do not map {agent.observation_dim} observations "
                                 f"to {len(agent.ladder)} actions")
        self.known_cost = agent.config.head == "known-cost"
        self.size_weight = np.float32(agent.config.size_weight)
        self.n_actions = len(agent.ladder)

    def __call__(self, observations: np.ndarray, size_weight: float | None = None) -> np.ndarray:
        """Q-values; `size_weight` overrides the known-cost head's own (the daemon's accuracy dial)."""
        obs = np.atleast_2d(np.asarray(observations, dtype=np.float32))
        x = self._mlp(obs)
        if not self.known_cost:
            return x
        weight = self.size_weight if size_weight is None else np.float32(size_weight)
        return _sigmoid(x) - weight * obs[:, -self.n_actions:]

    def hit_probabilities(self, observations: np.ndarray) -> np.ndarray | None:
        """P(hit) for every rung, as the known-cost head learned it (None for the plain MLP head, which has none)."""
        if not self.known_cost:
            return None
        return _sigmoid(self._mlp(np.atleast_2d(np.asarray(observations, dtype=np.float32))))

    def _mlp(self, obs: np.ndarray) -> np.ndarray:
        x = obs
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0, out=x)
        return x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))  # without overflow at large |x|
