"""The learned policy: a stable-baselines3 DQN whose Q-network scores every rung for one image.

Images are independent, so each episode is one step and gamma is 0: Q(s, a) estimates the
immediate reward `alpha * hit - beta * bytes / reference_bytes` (AdaCompress bootstrapped with
gamma 0.95 across unrelated images; we don't). Training divides rewards by alpha: the best action
is unchanged, and errors stay inside the quadratic zone of SB3's Huber loss (with alpha > 1 the
loss turns linear and the network learns medians, i.e. overconfident hits).

The default `known-cost` head uses what is known locally: the probe observation ends with every
rung's bytes / reference bytes, so Q(s, a) = P(hit | s, a) - (beta / alpha) * size_ratio(s, a)
with only the hit probability learned (a sigmoid over an MLP). The `mlp` head is SB3's plain one.

Agent files are zip archives holding `agent.json` (config, ladder, scoring, featurizer and the
SHA-256 of the weights) and `weights.npz` (the Q-network's tensors). Loading reads JSON and
`numpy.load(allow_pickle=False)` only, checks the digest, and rebuilds the network from the
config: an agent file cannot carry code, unlike a pickled SB3 `model.zip`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from PIL import Image
from stable_baselines3 import DQN
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from adacompress.agents.policies import Policy
from adacompress.codec import Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.features import DEFAULT_PROBE, Featurizer, is_probe, make_featurizer
from adacompress.outcomes import OutcomeTable
from adacompress.scoring import HitRule, Scoring

AGENT_FORMAT = "adacompress-agent"
AGENT_FORMAT_VERSION = 1


class AgentConfigError(AdaCompressError, ValueError):
    """A combination of agent settings that cannot work."""

    code = "bad_agent_config"


class AgentFileError(AdaCompressError):
    """An agent file that is missing, corrupt, tampered with or from an unknown format."""

    code = "bad_agent_file"


@dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters of the DQN; every field is saved with the agent."""

    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the Q-network."""
    learning_rate: float = 1e-3
    batch_size: int = 256
    buffer_size: int = 100_000
    """Replay capacity in transitions (each image adds one per rung)."""
    learning_starts: int = 32
    """Env steps before the first gradient step."""
    gradient_steps: int = 4
    """Gradient steps per env step."""
    target_update_interval: int = 100
    exploration_final_eps: float = 0.05
    """Counterfactual transitions cover every rung, so exploration barely matters."""
    featurizer: str = DEFAULT_PROBE
    """Observation: `probe:SURROGATE` (31-d robustness probe; plain `probe` is Lite0) or `embedding` (1280-d)."""
    head: str = "known-cost"
    """`known-cost` (learned hit probability minus the known size term; needs `probe`) or `mlp`."""
    size_weight: float = 1.0
    """beta / alpha of the scoring the agent was trained for (the known-cost head's size weight)."""
    seed: int = 0


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


def build_dqn(env: gym.Env, config: AgentConfig) -> DQN:
    if config.head == "known-cost" and not is_probe(config.featurizer):
        raise AgentConfigError("the known-cost head needs the probe featurizer "
                               "(its observation ends with size ratios)")
    policy_kwargs: dict[str, Any] = {"net_arch": list(config.net_arch)}
    if config.head == "known-cost":
        policy_kwargs["size_weight"] = config.size_weight
    return DQN(
        KnownCostPolicy if config.head == "known-cost" else "MlpPolicy", env, gamma=0.0,
        learning_rate=config.learning_rate, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, batch_size=config.batch_size, train_freq=1,
        gradient_steps=config.gradient_steps, target_update_interval=config.target_update_interval,
        exploration_fraction=0.2, exploration_final_eps=config.exploration_final_eps,
        policy_kwargs=policy_kwargs, seed=config.seed, device="cpu", verbose=0,
    )


@dataclass
class DqnAgent(Policy):
    """A trained Q-network plus everything needed to use it: ladder, reference, scoring, featurizer."""

    model: DQN
    ladder: Ladder
    reference: Action
    scoring: Scoring
    config: AgentConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "agent"
    needs_features = True

    def __post_init__(self) -> None:
        self._featurizer: Featurizer | None = None

    @property
    def featurizer(self) -> Featurizer:
        if self._featurizer is None:
            self._featurizer = make_featurizer(self.config.featurizer, self.ladder)
        return self._featurizer

    def q_values(self, observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            obs = torch.as_tensor(np.atleast_2d(observations), dtype=torch.float32)
            return self.model.q_net(obs).numpy()

    def choose(self, table: OutcomeTable, index: int, observation: np.ndarray | None = None) -> int:
        if observation is None:
            observation = self.featurizer.embed(table.images.load(index))
        return int(self.q_values(observation)[0].argmax())

    def action_for(self, image: Image.Image) -> Action:
        return self.ladder[int(self.q_values(self.featurizer.embed(image))[0].argmax())]

    def save(self, path: str | Path) -> Path:
        """Write the agent atomically as a zip of `agent.json` and `weights.npz`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v.cpu().numpy() for k, v in self.model.q_net.state_dict().items()})
        weights = buffer.getvalue()
        header = {
            "format": AGENT_FORMAT, "format_version": AGENT_FORMAT_VERSION,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "ladder": self.ladder.spec, "reference": self.reference.label,
            "scoring": {"rule": self.scoring.rule.value, "min_score": self.scoring.min_score,
                        "alpha": self.scoring.alpha, "beta": self.scoring.beta},
            "observation_dim": int(self.model.observation_space.shape[0]),
            "config": asdict(self.config), "metadata": self.metadata,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("agent.json", json.dumps(header, indent=2))
            archive.writestr("weights.npz", weights)
        tmp.replace(path)
        return path


def load_agent_file(path: str | Path) -> DqnAgent:
    """Read and verify an agent file; raise `AgentFileError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise AgentFileError(f"agent file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read("agent.json"))
            weights = archive.read("weights.npz")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise AgentFileError(f"{path} is not an adacompress agent file ({exc})") from exc
    if header.get("format") != AGENT_FORMAT or header.get("format_version") != AGENT_FORMAT_VERSION:
        raise AgentFileError(f"{path}: unsupported agent format {header.get('format')!r} "
                             f"v{header.get('format_version')}")
    if hashlib.sha256(weights).hexdigest() != header.get("weights_sha256"):
        raise AgentFileError(f"{path}: weights do not match their recorded SHA-256 (corrupt or altered)")
    try:
        config_fields = dict(header["config"])
        config_fields["net_arch"] = tuple(config_fields["net_arch"])
        config = AgentConfig(**config_fields)
        ladder = Ladder.parse(header["ladder"])
        codec, _, quality = header["reference"].partition(":")
        scoring_fields = dict(header["scoring"])
        scoring = Scoring(rule=HitRule(scoring_fields.pop("rule")), **scoring_fields)
        featurizer = make_featurizer(config.featurizer, ladder)
        model = build_dqn(_spaces_env(header["observation_dim"], featurizer.low, featurizer.high,
                                      len(ladder)), config)
        with np.load(io.BytesIO(weights), allow_pickle=False) as arrays:
            state = {k: torch.as_tensor(arrays[k]) for k in arrays.files}
        model.q_net.load_state_dict(state)
        model.q_net_target.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise AgentFileError(f"{path}: agent file is inconsistent ({exc})") from exc
    agent = DqnAgent(model, ladder, Action(codec, int(quality)), scoring, config,
                     header.get("metadata", {}), name=path.stem)
    agent._featurizer = featurizer
    return agent
