"""The numpy Q-network that serves agents decides exactly as the SB3 network they were trained as."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adacompress.agents.agent_file import AgentConfig, AgentFile
from adacompress.agents.dqn import _spaces_env, agent_file, build_dqn, dqn_from_agent
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.agents.screen import PREFIX as SCREEN_PREFIX
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION
from adacompress.scoring import Scoring

OBSERVATION_DIM = 31


def random_agent(head: str) -> AgentFile:
    """Two hidden layers with weights spread wider than at init, so every rung wins somewhere."""
    config = AgentConfig(net_arch=(32, 16), head=head, size_weight=0.05, featurizer="probe:lite1", seed=11)
    model = build_dqn(_spaces_env(OBSERVATION_DIM, 0.0, 10.0, len(DEFAULT_LADDER)), config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.q_net.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return agent_file(model, DEFAULT_LADDER, REFERENCE_ACTION, Scoring(), config)


def observations(n: int = 2000) -> np.ndarray:
    """Sparse probe-like vectors inside the observation box (dense ones all point one way and pick one rung)."""
    rng = np.random.default_rng(9)
    obs = rng.uniform(0, 10, (n, OBSERVATION_DIM)) * (rng.random((n, OBSERVATION_DIM)) < 0.3)
    obs[:, -len(DEFAULT_LADDER):] = np.sort(rng.uniform(0, 2.5, (n, len(DEFAULT_LADDER))), axis=1)  # size ratios
    return obs.astype(np.float32)


@pytest.fixture(params=["known-cost", "mlp", "trained"])
def agent(request, trained_agent) -> AgentFile:
    return trained_agent if request.param == "trained" else random_agent(request.param)


def test_numpy_and_sb3_give_the_same_q_values_and_actions(agent):
    obs = observations()
    model = dqn_from_agent(AgentFile.from_bytes(agent.to_bytes()))
    with torch.no_grad():
        sb3_q = model.q_net(torch.as_tensor(obs)).numpy()
    numpy_q = NumpyQNetwork(agent)(obs)
    assert numpy_q.shape == sb3_q.shape == (len(obs), len(DEFAULT_LADDER))
    assert numpy_q.dtype == np.float32
    np.testing.assert_allclose(numpy_q, sb3_q, atol=1e-4, rtol=0)  # float32 sums up to ~100, another order
    sb3_actions, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(numpy_q.argmax(axis=1), sb3_actions)
    np.testing.assert_array_equal(sb3_q.argmax(axis=1), sb3_actions)


@pytest.mark.parametrize("head", ["known-cost", "mlp"])
def test_the_comparison_sees_many_different_actions(head):
    """Guards the test above: agreement on a network that always picks one rung would prove little."""
    actions = NumpyQNetwork(random_agent(head))(observations()).argmax(axis=1)
    assert len(set(actions.tolist())) >= 5


def test_rebuilt_sb3_model_carries_the_agent_weights(agent):
    model = dqn_from_agent(agent)
    for name, array in agent.weights().items():
        if name.startswith(SCREEN_PREFIX):  # the early exit's arrays are not the learner's
            continue
        np.testing.assert_array_equal(model.q_net.state_dict()[name].numpy(), array)
        np.testing.assert_array_equal(model.q_net_target.state_dict()[name].numpy(), array)


def test_one_observation_or_a_batch(agent):
    network, obs = NumpyQNetwork(agent), observations(3)
    assert network(obs[1]).shape == (1, len(DEFAULT_LADDER))
    # BLAS sums a batch in another order than one row: the last bits differ
    np.testing.assert_allclose(network(obs[1]), network(obs)[1:2], rtol=1e-5, atol=1e-5)


def test_extreme_logits_saturate_without_overflow(recwarn):
    agent = random_agent("known-cost")
    obs = observations(1)
    obs[0, :-len(DEFAULT_LADDER)] = 1e4  # hit logits far beyond float32's exp range, both signs
    q = NumpyQNetwork(agent)(obs)
    hit_probability = q + agent.config.size_weight * obs[:, -len(DEFAULT_LADDER):]
    assert np.all(np.isfinite(q))
    assert set(np.round(hit_probability, 6).ravel().tolist()) <= {0.0, 1.0}
    assert {0.0, 1.0} <= set(np.round(hit_probability, 6).ravel().tolist())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
