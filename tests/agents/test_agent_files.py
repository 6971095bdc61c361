"""Agent files: round trip, and a clear error for every way a file can be missing or wrong."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adacompress.agents.dqn import AgentConfig, AgentFileError, DqnAgent, _spaces_env, build_dqn, load_agent_file
from adacompress.agents.pretrained import load_agent
from adacompress.cli import main
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION
from adacompress.features import ProbeFeaturizer
from adacompress.scoring import HitRule, Scoring


def make_agent(head: str = "known-cost", seed: int = 3) -> DqnAgent:
    featurizer = ProbeFeaturizer()
    config = AgentConfig(net_arch=(16,), head=head, size_weight=0.5, seed=seed)
    model = build_dqn(_spaces_env(featurizer.dim, featurizer.low, featurizer.high, len(DEFAULT_LADDER)), config)
    return DqnAgent(model, DEFAULT_LADDER, REFERENCE_ACTION, Scoring(HitRule.TOP1, 0.1, 1.0, 0.5), config,
                    {"note": "test"})


@pytest.mark.parametrize("head", ["known-cost", "mlp"])
def test_save_load_round_trip_keeps_q_values_and_settings(tmp_path, head):
    agent = make_agent(head)
    path = agent.save(tmp_path / "agent.zip")
    loaded = load_agent_file(path)
    obs = np.random.default_rng(0).uniform(0, 2, (5, ProbeFeaturizer().dim)).astype(np.float32)
    np.testing.assert_allclose(loaded.q_values(obs), agent.q_values(obs), rtol=1e-6)
    assert loaded.ladder == DEFAULT_LADDER
    assert loaded.scoring == agent.scoring
    assert loaded.config == agent.config
    assert loaded.metadata == {"note": "test"}


def test_known_cost_head_is_hit_probability_minus_weighted_size():
    import torch

    agent = make_agent("known-cost")
    obs = np.random.default_rng(1).uniform(0, 2, (4, ProbeFeaturizer().dim)).astype(np.float32)
    with torch.no_grad():
        hit_probability = torch.sigmoid(agent.model.q_net.q_net(torch.as_tensor(obs))).numpy()
    ratios = obs[:, -len(DEFAULT_LADDER):]
    np.testing.assert_allclose(agent.q_values(obs), hit_probability - 0.5 * ratios, atol=1e-6)
    assert np.all((hit_probability > 0) & (hit_probability < 1))


def test_missing_file(tmp_path):
    with pytest.raises(AgentFileError, match="does not exist"):
        load_agent_file(tmp_path / "nope.zip")


def test_not_a_zip(tmp_path):
    path = tmp_path / "agent.zip"
    path.write_bytes(b"this is not an agent")
    with pytest.raises(AgentFileError, match="not an adacompress agent file"):
        load_agent_file(path)


def test_tampered_weights_are_refused(tmp_path):
    path = make_agent().save(tmp_path / "agent.zip")
    with zipfile.ZipFile(path) as archive:
        header, weights = archive.read("agent.json"), bytearray(archive.read("weights.npz"))
    weights[-20] ^= 0xFF
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("agent.json", header)
        archive.writestr("weights.npz", bytes(weights))
    with pytest.raises(AgentFileError, match="SHA-256"):
        load_agent_file(path)


def test_pickle_payload_is_never_unpickled(tmp_path):
    """A weights member holding a pickle (what SB3's model.zip uses) is refused before any unpickling."""
    import hashlib
    import io
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))  # unpickling this creates `marker`

    buffer = io.BytesIO()
    np.save(buffer, np.array([Exploit()], dtype=object), allow_pickle=True)
    assert pickle.loads(pickle.dumps(Exploit())) is None and marker.exists()  # the payload is live
    marker.unlink()
    weights = buffer.getvalue()
    path = make_agent().save(tmp_path / "agent.zip")
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read("agent.json"))
    header["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("agent.json", json.dumps(header))
        archive.writestr("weights.npz", weights)
    with pytest.raises(AgentFileError):
        load_agent_file(path)
    assert not marker.exists()


def test_unknown_format_version(tmp_path):
    path = make_agent().save(tmp_path / "agent.zip")
    with zipfile.ZipFile(path) as archive:
        header, weights = json.loads(archive.read("agent.json")), archive.read("weights.npz")
    header["format_version"] = 99
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("agent.json", json.dumps(header))
        archive.writestr("weights.npz", weights)
    with pytest.raises(AgentFileError, match="unsupported agent format"):
        load_agent_file(path)


def test_model_card_digest_mismatch_is_refused(tmp_path):
    path = make_agent().save(tmp_path / "agent.zip")
    path.with_suffix(".json").write_text(json.dumps({"agent_sha256": "0" * 64}))
    with pytest.raises(AgentFileError, match="model card"):
        load_agent(path)


def test_cli_reports_a_corrupt_agent_in_one_line(tmp_path, photo_dir, capsys):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 truncated")
    code = main(["eval", "--backend", "local:lite0", "--images", str(photo_dir), "--policy", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "bad_agent_file" in err and "Traceback" not in err
