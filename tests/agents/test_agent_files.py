"""Agent files: a byte-exact round trip, and a typed error for every way a file can be missing or wrong."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adacompress.agents.agent_file import AgentConfig, AgentFile, AgentFileError
from adacompress.agents.dqn import _spaces_env, agent_file, build_dqn
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.cli import main
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Ladder
from adacompress.scoring import HitRule, Scoring

OBSERVATION_DIM = 31


def make_agent(head: str = "known-cost", seed: int = 3, metadata: dict | None = None) -> AgentFile:
    config = AgentConfig(net_arch=(16,), head=head, size_weight=0.5, seed=seed, featurizer="probe:lite1")
    model = build_dqn(_spaces_env(OBSERVATION_DIM, 0.0, 10.0, len(DEFAULT_LADDER)), config)
    return agent_file(model, DEFAULT_LADDER, REFERENCE_ACTION, Scoring(HitRule.TOP1, 0.1, 1.0, 0.5), config,
                      {"note": "test"} if metadata is None else metadata)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_header(data: bytes, **changes) -> bytes:
    entries = members(data)
    header = json.loads(entries["agent.json"])
    header.update(changes)
    entries["agent.json"] = json.dumps(header).encode()
    return rezip(entries)


@pytest.mark.parametrize("head", ["known-cost", "mlp"])
def test_bytes_round_trip_keeps_everything(head):
    agent = make_agent(head)
    loaded = AgentFile.from_bytes(agent.to_bytes())
    assert loaded == agent
    assert loaded.version == agent.version == hashlib.sha256(agent.weights_npz).hexdigest()
    assert loaded.weights().keys() == agent.weights().keys()
    for name, array in agent.weights().items():
        np.testing.assert_array_equal(loaded.weights()[name], array)
        assert loaded.weights()[name].dtype == np.float32
    assert (loaded.ladder, loaded.reference, loaded.config) == (DEFAULT_LADDER, REFERENCE_ACTION, agent.config)
    assert loaded.scoring == Scoring(HitRule.TOP1, 0.1, 1.0, 0.5)
    assert loaded.metadata == {"note": "test"}


def test_save_and_read_round_trip_keeps_q_values(tmp_path):
    agent = make_agent()
    path = agent.save(tmp_path / "nested" / "agent.zip")
    assert path.read_bytes() == agent.to_bytes()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    obs = np.random.default_rng(0).uniform(0, 2, (5, OBSERVATION_DIM)).astype(np.float32)
    np.testing.assert_array_equal(NumpyQNetwork(AgentFile.read(path))(obs), NumpyQNetwork(agent)(obs))


def test_serialization_is_deterministic():
    agent = make_agent()
    data = agent.to_bytes()
    assert agent.to_bytes() == data
    assert make_agent().to_bytes() == data  # the same seed builds the same weights, and zip entries carry no clock
    assert AgentFile.from_bytes(data).to_bytes() == data


def test_version_names_the_weights_not_the_metadata():
    agent = make_agent()
    assert make_agent(metadata={"other": 1}).version == agent.version
    assert make_agent(metadata={"other": 1}).to_bytes() != agent.to_bytes()
    assert make_agent(seed=4).version != agent.version


def test_known_cost_head_is_hit_probability_minus_weighted_size():
    import torch

    config = AgentConfig(net_arch=(16,), size_weight=0.5, featurizer="probe:lite1", seed=3)
    model = build_dqn(_spaces_env(OBSERVATION_DIM, 0.0, 10.0, len(DEFAULT_LADDER)), config)
    agent = agent_file(model, DEFAULT_LADDER, REFERENCE_ACTION, Scoring(), config)
    obs = np.random.default_rng(1).uniform(0, 2, (4, OBSERVATION_DIM)).astype(np.float32)
    with torch.no_grad():
        hit_probability = torch.sigmoid(model.q_net.q_net(torch.as_tensor(obs))).numpy()
    ratios = obs[:, -len(DEFAULT_LADDER):]
    np.testing.assert_allclose(NumpyQNetwork(agent)(obs), hit_probability - 0.5 * ratios, atol=1e-6)
    assert np.all((hit_probability > 0) & (hit_probability < 1))



def test_missing_file(tmp_path):
    with pytest.raises(AgentFileError, match=r"agent file .*nope\.zip does not exist"):
        AgentFile.read(tmp_path / "nope.zip")


@pytest.mark.parametrize("data", [b"this is not an agent", b"PK\x03\x04 truncated", b""])
def test_bytes_that_are_not_a_zip(data):
    with pytest.raises(AgentFileError, match=r"^uploaded is not an adacompress agent file"):
        AgentFile.from_bytes(data, "uploaded")


def test_a_pickled_sb3_model_zip_is_not_an_agent_file():
    sb3_like = rezip({"data": b"{}", "policy.pth": pickle.dumps({"q_net.0.weight": [1.0]})})
    with pytest.raises(AgentFileError, match=r"is not an adacompress agent file \(.*agent\.json"):
        AgentFile.from_bytes(sb3_like)


def test_tampered_weights_are_refused():
    entries = members(make_agent().to_bytes())
    weights = bytearray(entries["weights.npz"])
    weights[-20] ^= 0xFF
    entries["weights.npz"] = bytes(weights)
    with pytest.raises(AgentFileError, match=r"weights do not match their recorded SHA-256"):
        AgentFile.from_bytes(rezip(entries))


def test_pickle_payload_is_never_unpickled(tmp_path):
    """A weights npz holding a pickled object (what SB3's model.zip uses) is refused without unpickling it."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))  # unpickling this creates `marker`

    assert pickle.loads(pickle.dumps(Exploit())) is None and marker.exists()  # the payload is live
    marker.unlink()
    buffer = io.BytesIO()
    np.savez(buffer, **{"q_net.0.weight": np.array([Exploit()], dtype=object)})
    weights = buffer.getvalue()
    entries = members(make_agent().to_bytes())
    entries["weights.npz"] = weights
    header = json.loads(entries["agent.json"])
    header["weights_sha256"] = hashlib.sha256(weights).hexdigest()  # a consistent, deliberately forged file
    entries["agent.json"] = json.dumps(header).encode()
    with pytest.raises(AgentFileError, match=r"inconsistent \(Object arrays cannot be loaded when allow_pickle"):
        AgentFile.from_bytes(rezip(entries))
    assert not marker.exists()


@pytest.mark.parametrize("changes, match", [
    ({"format_version": 99}, r"unsupported agent format 'adacompress-agent'"),
    ({"format": "sb3-model"}, r"unsupported agent format 'sb3-model'"),
    ({"ladder": "jpeg:abc"}, r"inconsistent \(ladder group 'jpeg:abc'"),
    ({"reference": "jpeg:seventy"}, r"inconsistent"),
    ({"config": {"net_arch": [16], "no_such_setting": 1}}, r"inconsistent .*no_such_setting"),
])
def test_wrong_or_unknown_headers_are_refused(changes, match):
    with pytest.raises(AgentFileError, match=match):
        AgentFile.from_bytes(with_header(make_agent().to_bytes(), **changes))


def test_a_header_that_is_not_an_object_is_refused():
    entries = members(make_agent().to_bytes())
    entries["agent.json"] = b"[1, 2, 3]"
    with pytest.raises(AgentFileError, match=r"unsupported agent format 'list'"):
        AgentFile.from_bytes(rezip(entries))


def test_weights_that_do_not_fit_the_ladder_are_refused():
    agent = make_agent()
    short = replace(agent, ladder=Ladder(DEFAULT_LADDER.actions[:5]))
    with pytest.raises(AgentFileError, match=r"do not map 31 observations to 5 actions"):
        NumpyQNetwork(short)
    layerless = replace(agent, weights_npz=AgentFile.pack_weights({"scale": np.ones(3, np.float32)}))
    with pytest.raises(AgentFileError, match=r"do not map"):
        NumpyQNetwork(layerless)


def test_cli_reports_a_corrupt_agent_in_one_line(tmp_path, photo_dir, capsys):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 truncated")
    code = main(["eval", "--backend", "local:lite0", "--images", str(photo_dir), "--policy", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "bad_agent_file" in err and str(path) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
