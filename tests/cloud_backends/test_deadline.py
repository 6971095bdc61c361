"""The deadline bounds a call whatever the server does, and work a caller gave up on is neither sent nor lost."""

from __future__ import annotations

import threading
import time

import pytest

from adacompress.cloud_backends.cost import cost_report
from adacompress.cloud_backends.deadline import DeadlineExceeded


@pytest.mark.parametrize("provider", ["baidu", "facepp", "google"], indirect=True)
def test_a_dripping_server_cannot_hold_a_call_past_its_deadline(provider, fake, make_backend, images):
    """Per-read timeouts never fire on a byte every 50 ms; the deadline must still end the call."""
    fake.faults.drip_s = 0.05
    backend = make_backend(deadline_s=1.5, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="1.5 s deadline"):
        backend.recognize(images.jpeg())
    assert time.monotonic() - started < 1.5 + 0.5
    assert fake.calls == 1


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_calls_given_up_on_are_not_sent_and_sent_ones_are_billed(provider, fake, make_backend, images):
    """8 callers, a 1 s deadline, a 3 s server: nothing leaves after the callers gave up; answers are billed."""
    fake.faults.delay_s = 3.0
    backend = make_backend(deadline_s=1.0, max_attempts=1)
    gave_up: list[float] = []
    started = time.monotonic()

    def call(seed: int) -> None:
        with pytest.raises(DeadlineExceeded):
            backend.recognize(images.jpeg(seed))
        gave_up.append(time.monotonic())

    threads = [threading.Thread(target=call, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(gave_up) == 8
    last_caller_left = max(gave_up)
    time.sleep(max(0.0, started + 3.0 + 1.5 - time.monotonic()))  # in-flight requests get their answers
    assert fake.arrivals and all(arrival <= last_caller_left for arrival in fake.arrivals), \
        "no request may leave after every caller gave up"
    report = cost_report(backend)
    assert report.attempts == fake.calls
    assert report.billable_calls == fake.answered == fake.calls, "what the provider answered is billed"
    assert report.abandoned == fake.calls
