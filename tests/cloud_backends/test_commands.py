"""The CLI against the fakes: `fake-cloud` as a real process, and `train` / `eval` end to end on each API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adacompress.cli import main
from adacompress.cloud_backends.registry import create_backend


def test_fake_cloud_command_serves_until_ctrl_c(tmp_path, images, monkeypatch):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "adacompress.cli", "fake-cloud", "--provider", "google",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, f"fake-cloud exited early: {process.stderr.read()}"
            lines.append(line.strip())
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
                 "--policy", "fixed:75", "--json", str(report)]) == 0
    results = json.loads(report.read_text())["results"]
    assert [r["images"] for r in results] == [4, 4]
    assert fake.calls - trained_calls <= 4 * 2, "answers paid for during training come from the cache"


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_cli_reports_an_open_breaker_in_one_line(provider, fake, image_folder, tmp_path, capsys):
    fake.faults.quota_exhausted = True
    code = main(["eval", "--backend", provider, "--images", str(image_folder), "--policy", "fixed:75"])
    assert code == 1
    err = capsys.readouterr().err
    assert "error [daily_quota_exhausted]" in err and "Open api daily request limit reached" in err
    assert fake.calls == 1
