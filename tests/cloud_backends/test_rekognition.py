"""Rekognition specifics: boto3 wiring (endpoint, region, SigV4, no hidden retries) and the awsJson1.1 fake."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from botocore.exceptions import ClientError

from adacompress.cloud_backends.base import AuthError, Throttled
from adacompress.cloud_backends.registry import create_backend

pytestmark = pytest.mark.parametrize("provider", ["rekognition"], indirect=True)


def test_botocore_does_not_retry_behind_our_back(provider, fake, make_backend, images):
    fake.faults.throttle_next = 1
    with pytest.raises(Throttled, match="ThrottlingException"):
        make_backend(max_attempts=1).recognize(images.jpeg())
    assert fake.calls == 1


def test_min_confidence_and_max_labels_are_sent(provider, fake, make_backend, images):
    answer = make_backend(min_score=0.45, max_labels=2).recognize(images.jpeg())
    raw_confidences = [label["Confidence"] for label in answer.raw["Labels"]]
    assert 0 < len(raw_confidences) <= 2
    assert min(raw_confidences) >= 45.0
    assert all(name == name.title() for name in answer.names)


def test_endpoint_url_option_wins_over_the_environment(provider, fake, make_backend, images, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", "http://127.0.0.1:9")  # nothing listens there
    assert make_backend(endpoint_url=fake.endpoint).recognize(images.jpeg()).labels


def test_missing_region_names_the_variable(provider, fake, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(AuthError, match="AWS_REGION"):
        create_backend("rekognition", cache="off")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    create_backend("rekognition", cache="off").close()


def test_fake_requires_target_and_signature(provider, fake):
    body = json.dumps({"Image": {"Bytes": ""}})
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    unsigned = httpx.post(fake.endpoint, content=body,
                          headers={**headers, "X-Amz-Target": "RekognitionService.DetectLabels"})
    assert unsigned.status_code == 403
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    wrong_target = httpx.post(fake.endpoint, content=body,
                              headers={**headers, "X-Amz-Target": "RekognitionService.DetectFaces"})
    assert wrong_target.json()["__type"] == "UnknownOperationException"
    assert fake.calls == 0


def test_throttling_comes_as_http_500_as_the_api_reference_says(provider, fake, make_backend, images):
    fake.faults.throttle_next = 1
    with pytest.raises(Throttled) as caught:
        make_backend(max_attempts=1).recognize(images.jpeg())
    cause = caught.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_retry_after_as_an_http_date_is_honoured(provider, fake, make_backend, images):
    fake.faults.throttle_next, fake.faults.retry_after_s, fake.faults.retry_after_http_date = 1, 2.0, True
    started = time.monotonic()
    assert make_backend().recognize(images.jpeg()).labels
    assert time.monotonic() - started >= 0.9  # an HTTP date has 1 s resolution: at least 1 s of the 2 s remains
    assert fake.calls == 2
