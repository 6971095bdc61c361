"""Policies (`decide(upload) -> Decision`), agent files, and the DQN learner (imported on its own: it needs torch)."""

from adacompress.agents.agent_file import AgentConfig, AgentFile, AgentFileError
from adacompress.agents.policies import (
    Decision,
    FixedPolicy,
    LearnedPolicy,
    Policy,
    PolicyError,
    RandomPolicy,
    load_policy,
    policy_from_spec,
)

__all__ = [
    "AgentConfig", "AgentFile", "AgentFileError", "Decision", "FixedPolicy", "LearnedPolicy", "Policy",
    "PolicyError", "RandomPolicy", "load_policy", "policy_from_spec",
]
