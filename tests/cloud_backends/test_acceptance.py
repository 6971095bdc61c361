"""What each backend accepts, read through its full stack, and ladders it cannot take refused before any upload."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from adacompress.cli import main
from adacompress.cloud_backends import acceptance
from adacompress.cloud_backends.acceptance import check_ladder, refusal
from adacompress.cloud_backends.baidu import BaiduBackend
from adacompress.cloud_backends.cache import CachedBackend
from adacompress.cloud_backends.cost import layers
from adacompress.cloud_backends.facepp import FaceppBackend
from adacompress.cloud_backends.google import GoogleVisionBackend
from adacompress.cloud_backends.limits import BAIDU_LIMITS, FACEPP_LIMITS, GOOGLE_LIMITS, REKOGNITION_LIMITS
from adacompress.cloud_backends.registry import create_backend
from adacompress.cloud_backends.rekognition import RekognitionBackend
from adacompress.cloud_backends.retry import ResilientBackend
from adacompress.codec import Action, Ladder, LadderError
from adacompress.commands.bench import bench_ladder

RAW = {"rekognition": (RekognitionBackend, REKOGNITION_LIMITS), "baidu": (BaiduBackend, BAIDU_LIMITS),
       "facepp": (FaceppBackend, FACEPP_LIMITS), "google": (GoogleVisionBackend, GOOGLE_LIMITS)}
WEBP = Action("webp", 30)


def test_the_full_stack_exposes_the_raw_clients_limits(provider, make_backend):
    raw_class, limits = RAW[provider]
    backend = make_backend()
    chain = layers(backend)
    assert [type(layer) for layer in chain] == [CachedBackend, ResilientBackend, raw_class]
    assert [layer.limits for layer in chain] == [limits] * 3


def test_limits_given_to_the_client_are_the_ones_the_stack_exposes(provider, make_backend):
    custom = replace(RAW[provider][1], formats=frozenset({"JPEG", "PNG", "WEBP"}), min_side_px=300)
    backend = make_backend(limits=custom)
    assert backend.limits is custom
    check_ladder([WEBP], backend)
    with pytest.raises(LadderError, match="at least 300 px"):
        check_ladder([Action("jpeg", 25, 256)], backend)


@pytest.mark.parametrize("provider, accepted", [("rekognition", "JPEG, PNG"), ("baidu", "BMP, JPEG, PNG"),
                                                ("facepp", "JPEG, PNG"), ("google", None)], indirect=["provider"])
def test_webp_goes_only_to_google(provider, accepted, make_backend, fake):
    backend = make_backend()
    ladder = Ladder.parse("jpeg:10,25;webp:30")
    if accepted is None:
        check_ladder(ladder, backend)
        assert refusal(WEBP, backend.limits, backend.name) is None
    else:
        with pytest.raises(LadderError) as refused:
            check_ladder(ladder, backend)
        assert str(refused.value) == f"webp:30 cannot go to {provider}: it accepts {accepted}; take it off the ladder"
        assert refused.value.code == "bad_ladder"
    assert fake.requests == 0


@pytest.mark.parametrize("provider, cap, minimum", [
    ("rekognition", 48, 80), ("rekognition", 79, 80), ("rekognition", 80, None),
    ("baidu", 48, None), ("baidu", 16, None),
    ("facepp", 32, 48), ("facepp", 48, None),
    ("google", 16, None),
], indirect=["provider"])
def test_a_size_cap_under_the_providers_smallest_side_is_refused(provider, cap, minimum, make_backend):
    backend = make_backend()
    action = Action("jpeg", 25, cap)
    reason = refusal(action, backend.limits, backend.name)
    if minimum is None:
        assert reason is None
        check_ladder([action], backend)
    else:
        assert reason == f"jpeg:25@{cap} cannot go to {provider}: its short side must be at least {minimum} px"
        with pytest.raises(LadderError, match=f"jpeg:25@{cap} cannot go to {provider}"):
            check_ladder([Action("jpeg", 10), action], backend)


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_the_error_names_every_refused_action_once(provider, make_backend):
    ladder = Ladder.parse("jpeg:10,25;webp:30,50;jpeg:25@48")
    with pytest.raises(LadderError) as refused:
        check_ladder([*ladder.actions, Action("webp", 30)], make_backend(), owner="agent:tiny")
    assert str(refused.value) == ("agent:tiny: webp:30 cannot go to rekognition: it accepts JPEG, PNG (also refused: "
                                  "webp:50, jpeg:25@48); take them off the ladder")


def test_the_local_backend_takes_any_codec_pillow_writes(monkeypatch):
    local = create_backend("local:lite0")
    assert local.limits is None
    check_ladder(Ladder.parse("jpeg:10;webp:30;jpeg:25@16"), local)
    monkeypatch.setattr(acceptance, "codec_available", lambda codec: codec != "avif")
    with pytest.raises(LadderError, match="^avif:30 cannot go to local:lite0: this Pillow build cannot write avif"):
        check_ladder(Ladder.parse("jpeg:10;avif:30"), local)


@pytest.mark.parametrize("provider, other_codecs", [("rekognition", set()), ("google", {"webp"})],
                         indirect=["provider"])
def test_bench_compares_only_the_codecs_the_backend_takes(provider, other_codecs, make_backend, monkeypatch):
    monkeypatch.setattr(acceptance, "codec_available", lambda codec: True)
    ladder = bench_ladder(make_backend())
    assert {a.codec for a in ladder.actions} - {"jpeg"} == other_codecs


@pytest.fixture
def image_folder(tmp_path, images) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(2):
        images.textured(seed).save(folder / f"img{seed}.png")
    return folder


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("provider", ["rekognition", "baidu"], indirect=True)
@pytest.mark.parametrize("command", ["eval", "train"])
def test_cli_refuses_the_ladder_before_any_request(command, provider, fake, image_folder, tmp_path, capsys):
    extra = ["--policy", "fixed:10"] if command == "eval" else ["--out", str(tmp_path / "agent.zip"), "--steps", "4"]
    code, err = run_cli(capsys, command, "--backend", provider, "--images", str(image_folder),
                        "--ladder", "jpeg:10;webp:30", *extra)
    assert code == 1
    assert err.strip() == (f"adacompress {command}: error [bad_ladder]: webp:30 cannot go to {provider}: it accepts "
                           f"{'BMP, ' if provider == 'baidu' else ''}JPEG, PNG; take it off the ladder")
    assert fake.requests == 0
    assert not (tmp_path / "agent.zip").exists()


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_bench_refuses_an_agent_whose_ladder_the_backend_cannot_take(provider, fake, image_folder, tmp_path, capsys):
    agent = tmp_path / "webp-agent.zip"
    assert main(["train", "--backend", "local:lite0", "--images", str(image_folder), "--ladder", "jpeg:10;webp:30",
                 "--out", str(agent), "--steps", "4", "--net-arch", "8", "--no-progress"]) == 0
    capsys.readouterr()
    code, err = run_cli(capsys, "bench", "--backend", provider, "--images", str(image_folder),
                        "--out", str(tmp_path / "bench"), "--agent", str(agent))
    assert code == 1
    assert "error [bad_ladder]: agent:webp-agent: webp:30 cannot go to rekognition: it accepts JPEG, PNG" in err
    assert fake.requests == 0
    assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_serve_refuses_a_policy_the_backend_cannot_take(provider, fake, capsys, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("serve started with a refused policy"))
    code, err = run_cli(capsys, "serve", "--backend", provider, "--policy", "fixed:webp:30", "--workers", "0")
    assert code == 1
    assert err.strip().splitlines()[-1] == ("adacompress serve: error [bad_ladder]: policy fixed:webp:30: webp:30 "
                                            "cannot go to facepp: it accepts JPEG, PNG; take it off the ladder")
    assert fake.requests == 0


def test_compress_refuses_a_codec_this_pillow_cannot_write(tmp_path, images, capsys, monkeypatch):
    monkeypatch.setattr(acceptance, "codec_available", lambda codec: codec != "avif")
    source = tmp_path / "photo.png"
    images.textured().save(source)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "compress", str(source), "--policy", "fixed:avif:30", "--out", str(out))
    assert code == 1
    assert err.strip() == (f"adacompress compress: error [bad_ladder]: policy fixed:avif:30: avif:30 cannot go to "
                           f"{out}: this Pillow build cannot write avif; take it off the ladder")
    assert not out.exists()
