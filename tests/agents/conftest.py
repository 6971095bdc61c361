"""Fixtures for agent tests: a small folder of real photos from the bundled demo set, and an agent trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adacompress.agents.agent_file import AgentConfig, AgentFile
from adacompress.agents.dqn import agent_file, build_dqn
from adacompress.agents.training import train_agent
from adacompress.cloud_backends.local import LocalBackend
from adacompress.demo_images import demo_image_set
from adacompress.envs.jpeg_quality import JpegQualityEnv
from adacompress.features import make_featurizer

TRAINED_CONFIG = AgentConfig(net_arch=(16,), featurizer="probe:lite1", learning_starts=4, batch_size=32,
                             gradient_steps=2, size_weight=0.5, seed=2)
"""Small enough to train in seconds; gradient steps start after 4 images, so the weights really move."""


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight bundled photos and crops, written as PNG so the only JPEG coding is ours."""
    folder = tmp_path_factory.mktemp("photos")
    images = demo_image_set()
    for i in range(0, 24, 3):
        images.load(i).save(folder / f"photo_{i:02d}.png")
    return folder


@pytest.fixture(scope="session")
def trained_agent(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> AgentFile:
    """A known-cost agent on the Lite1 probe, trained for 16 steps against the Lite0 backend."""
    env = JpegQualityEnv(photo_dir, LocalBackend("lite0"), featurizer=make_featurizer(TRAINED_CONFIG.featurizer),
                         infer_monotone=True)
    env.reset(seed=0)
    untrained = agent_file(build_dqn(env, TRAINED_CONFIG), env.ladder, env.table.reference_action,
                           env.table.scoring, TRAINED_CONFIG)
    agent, report = train_agent(env, TRAINED_CONFIG, 16, tmp_path_factory.mktemp("trained") / "agent.zip",
                                checkpoint_every=0)
    assert report.steps == 16
    assert agent.version != untrained.version  # the same seeded start, moved by gradient steps
    return agent
