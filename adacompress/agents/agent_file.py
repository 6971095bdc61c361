"""Agent files as bytes: a zip of `agent.json` (settings) and `weights.npz` (the Q-network's tensors).

Reading uses JSON and `numpy.load(allow_pickle=False)` only, so an agent file cannot carry code
(unlike a pickled SB3 `model.zip`). The version of an agent is the SHA-256 of its weights: two
files with the same weights are the same policy, whatever their metadata says. Nothing here
imports torch or stable-baselines3; serving reads agents with this module alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adacompress.agents.screen import Screen
from adacompress.codec import Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.features import DEFAULT_FEATURIZER
from adacompress.scoring import HitRule, Scoring

AGENT_FORMAT = "adacompress-agent"
AGENT_FORMAT_VERSION = 1


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
    featurizer: str = DEFAULT_FEATURIZER
    """What the agent sees (`adacompress.features.make_featurizer` names)."""
    head: str = "known-cost"
    """`known-cost` (learned hit probability minus the known size term; needs a featurizer ending in size
    ratios) or `mlp`."""
    size_weight: float = 1.0
    """beta / alpha of the scoring the agent was trained for (the known-cost head's size weight)."""
    seed: int = 0


@dataclass(frozen=True)
class AgentFile:
    """Everything needed to run a trained agent: settings, ladder, scoring and the Q-network weights."""

    config: AgentConfig
    ladder: Ladder
    reference: Action
    scoring: Scoring
    observation_dim: int
    weights_npz: bytes
    """`numpy.savez` of the Q-network's state dict, as stored; its SHA-256 is the version."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return hashlib.sha256(self.weights_npz).hexdigest()

    def weights(self) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.weights_npz), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}

    def screen(self) -> Screen | None:
        """The early-exit screen stored among the weights (None if the agent has none)."""
        weights = self.weights()
        try:
            return Screen.from_weights(weights)
        except ValueError as exc:
            raise AgentFileError(f"agent weights hold a broken screen ({exc})") from exc

    @staticmethod
    def pack_weights(arrays: dict[str, np.ndarray]) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def header(self) -> dict[str, Any]:
        return {
            "format": AGENT_FORMAT, "format_version": AGENT_FORMAT_VERSION,
            "weights_sha256": self.version,
            "ladder": self.ladder.spec, "reference": self.reference.label,
            "scoring": {"rule": self.scoring.rule.value, "min_score": self.scoring.min_score,
                        "alpha": self.scoring.alpha, "beta": self.scoring.beta},
            "observation_dim": self.observation_dim,
            "config": asdict(self.config), "metadata": self.metadata,
        }

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_entry("agent.json"), json.dumps(self.header(), indent=2))
            archive.writestr(_entry("weights.npz"), self.weights_npz)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "agent file") -> AgentFile:
        """Parse and verify; `AgentFileError` names `source` and what is wrong."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                header = json.loads(archive.read("agent.json"))
                weights = archive.read("weights.npz")
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, ValueError) as exc:
            raise AgentFileError(f"{source} is not an adacompress agent file ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != AGENT_FORMAT \
                or header.get("format_version") != AGENT_FORMAT_VERSION:
            found = header.get("format") if isinstance(header, dict) else type(header).__name__
            raise AgentFileError(f"{source}: unsupported agent format {found!r}")
        if hashlib.sha256(weights).hexdigest() != header.get("weights_sha256"):
            raise AgentFileError(f"{source}: weights do not match their recorded SHA-256 (corrupt or altered)")
        try:
            config_fields = dict(header["config"])
            config_fields["net_arch"] = tuple(config_fields["net_arch"])
            scoring_fields = dict(header["scoring"])
            scoring = Scoring(rule=HitRule(scoring_fields.pop("rule")), **scoring_fields)
            agent = cls(AgentConfig(**config_fields), Ladder.parse(header["ladder"]), Action.parse(header["reference"]),
                        scoring, int(header["observation_dim"]), weights, dict(header.get("metadata", {})))
            agent.screen()  # a readable npz without pickles, or an error now rather than at the first request
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentFileError(f"{source}: agent file is inconsistent ({exc})") from exc
        return agent

    def save(self, path: str | Path) -> Path:
        """Write atomically: a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> AgentFile:
        path = Path(path)
        if not path.is_file():
            raise AgentFileError(f"agent file {path} does not exist")
        return cls.from_bytes(path.read_bytes(), str(path))


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, so the same agent always serializes to the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
