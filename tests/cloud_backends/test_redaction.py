"""No credential reaches a log line or an error message, even with every library logging at DEBUG."""

from __future__ import annotations

import logging
import traceback

import pytest

from adacompress.cloud_backends.base import AuthError
from adacompress.cloud_backends.redact import redact, register_secret

SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BAIDU_API_KEY", "BAIDU_SECRET_KEY",
               "FACEPP_API_KEY", "FACEPP_API_SECRET", "GOOGLE_VISION_API_KEY")


def test_no_credential_in_any_log_line(provider, fake, make_backend, images, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # the root logger: httpx, httpcore, botocore, urllib3 and ours
    secrets = [value for name, value in fake.env().items() if name in SECRET_VARS]
    errors: list[BaseException] = []
    backend = make_backend()
    backend.recognize(images.jpeg())
    fake.faults.throttle_next = 1
    backend.recognize(images.jpeg(1))
    if provider == "baidu":
        fake.expire_tokens()
        backend.recognize(images.jpeg(2))
        secrets += list(fake.tokens)  # access tokens are credentials too
    fake.faults.bad_credentials = True
    with pytest.raises(AuthError) as caught:
        backend.recognize(images.jpeg(3))
    errors.append(caught.value)
    wrong = {"rekognition": "AWS_SECRET_ACCESS_KEY", "baidu": "BAIDU_SECRET_KEY", "facepp": "FACEPP_API_SECRET",
             "google": "GOOGLE_VISION_API_KEY"}[provider]
    monkeypatch.setenv(wrong, "wrong-secret-value-0123")
    secrets.append("wrong-secret-value-0123")
    fake.faults.bad_credentials = False
    with pytest.raises(AuthError) as caught:
        make_backend().recognize(images.jpeg(4))
    errors.append(caught.value)

    assert len(secrets) >= 2 and all(len(s) >= 8 for s in secrets)
    library_lines = [r for r in caplog.records if r.name.split(".")[0] in ("httpx", "botocore")]
    assert library_lines, "the libraries must have logged, or this test proves nothing"
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    text += "\n".join("".join(traceback.format_exception(e)) for e in errors)
    for secret in secrets:
        assert secret not in text


def test_redact_masks_registered_secrets_and_credential_parameters():
    register_secret("s3cr3t-value-xyz")
    line = ("POST https://aip.baidubce.com/oauth/2.0/token?grant_type=client_credentials&client_id=AK1"
            "&client_secret=SK1 key=AIza123 access_token=24.abc body s3cr3t-value-xyz "
            "Credential=AKIAEXAMPLE/20260101/us-east-1/rekognition/aws4_request")
    cleaned = redact(line)
    for leaked in ("AK1", "SK1", "AIza123", "24.abc", "s3cr3t-value-xyz", "AKIAEXAMPLE"):
        assert leaked not in cleaned
    assert "grant_type=client_credentials" in cleaned and "rekognition/aws4_request" in cleaned
