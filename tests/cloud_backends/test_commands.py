"""The CLI against the fakes: `fake-cloud` as a real process, and `train` / `eval` end to end on each API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adacompress.cli import main
from adacompress.cloud_backends.cache_stores import RedisCache
from adacompress.cloud_backends.registry import create_backend
from adacompress.service.assemble import ServeOptions, backend_options
from tests.cloud_backends.conftest import REDIS_URL


def test_fake_cloud_command_serves_until_ctrl_c(tmp_path, images, monkeypatch):
    process, lines = start_fake_cloud()
    try:
        assert "listening on http://127.0.0.1:" in lines[0]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export"))
        assert set(exports) == {"GOOGLE_VISION_ENDPOINT", "GOOGLE_VISION_API_KEY"}
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        backend = create_backend("google", cache="off")
        assert backend.recognize(images.jpeg()).labels
        backend.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped after 1 recognition calls" in out


def start_fake_cloud(**popen_options) -> tuple[subprocess.Popen, list[str]]:
    """`adacompress fake-cloud` as a real process, and the lines it printed up to "Press Ctrl-C"."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "adacompress.cli", "fake-cloud", "--provider", "google",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               **popen_options)
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise AssertionError(f"fake-cloud exited early: {process.stderr.read()}")
        lines.append(line.strip())
    return process, lines


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a job started with `&`


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_backgrounded_fake_cloud_stops_on_sigterm_and_sigint(stop):
    process, lines = start_fake_cloud(preexec_fn=_ignore_sigint)
    try:
        assert "listening on http://127.0.0.1:" in lines[0]
        process.send_signal(stop)
        out, err = process.communicate(timeout=5)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "adacompress fake-cloud: stopped after 0 recognition calls" in out
    assert "Traceback" not in err


def test_fake_cloud_on_a_busy_port_says_so_in_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["fake-cloud", "--provider", "google", "--port", str(port)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"error [port_in_use]: port {port} on 127.0.0.1 is already in use" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def image_folder(tmp_path, images) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(4):
        images.textured(seed, (160 + 16 * seed, 120 + 8 * seed)).save(folder / f"img{seed}.png")
    return folder


@pytest.mark.parametrize("provider", ["rekognition", "baidu", "facepp"], indirect=True)
def test_train_then_eval_end_to_end(provider, fake, image_folder, tmp_path, monkeypatch, capsys):
    """`adacompress train` on the API's fake with a tiny budget, then `eval`: a repeat upload is free."""
    monkeypatch.setenv("BAIDU_QPS", "50")  # the free tier's 2 QPS would only make the test slow
    agent = tmp_path / "agent.zip"
    assert main(["train", "--backend", provider, "--images", str(image_folder), "--steps", "8",
                 "--max-calls", "40", "--out", str(agent), "--no-progress"]) == 0
    assert agent.is_file()
    trained_calls = fake.calls
    assert 0 < trained_calls <= 40
    assert f"{trained_calls} backend calls" in capsys.readouterr().out
    report = tmp_path / "eval.json"
    assert main(["eval", "--backend", provider, "--images", str(image_folder), "--policy", str(agent),
                 "--policy", "fixed:75", "--json", str(report), "--price-per-1k-usd", "2"]) == 0
    payload = json.loads(report.read_text())
    assert [r["images"] for r in payload["results"]] == [4, 4]
    eval_calls = fake.calls - trained_calls
    assert eval_calls <= 4 * 2, "answers paid for during training come from the cache"
    cost = payload["cost"]
    assert cost["backend"] == provider and cost["cache_hits"] > 0
    assert cost["billable_calls"] == eval_calls
    assert cost["estimated_usd"] == pytest.approx(eval_calls * 2 / 1000)
    assert f"{cost['cache_hits']} cache hits" in capsys.readouterr().out


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_cli_reports_an_open_breaker_in_one_line(provider, fake, image_folder, tmp_path, capsys):
    fake.faults.quota_exhausted = True
    code = main(["eval", "--backend", provider, "--images", str(image_folder), "--policy", "fixed:75"])
    assert code == 1
    err = capsys.readouterr().err
    assert "error [daily_quota_exhausted]" in err and "Open api daily request limit reached" in err
    assert fake.calls == 1


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_serve_shares_its_redis_and_prefix_with_the_backend_cache(fake, redis_prefix, images):
    options = ServeOptions(backend="rekognition", redis_url=REDIS_URL, prefix=redis_prefix)
    backend = create_backend("rekognition", **backend_options(options))
    try:
        assert isinstance(backend.cache, RedisCache) and backend.cache.prefix == redis_prefix
        data = images.jpeg()
        backend.recognize(data)
        replica = create_backend("rekognition", **backend_options(options))  # a second replica, same flags
        replica.recognize(data)
        replica.close()
        assert fake.requests == 1 and replica.stats.cache_hits == 1  # answered once, shared in Redis
    finally:
        backend.close()
    assert backend_options(ServeOptions(backend="local")) == {}
    assert backend_options(ServeOptions(backend="rekognition", cache=False)) == {"cache": "off"}
