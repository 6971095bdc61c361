"""No credential reaches a log line or an error message, even with every library logging at DEBUG."""

from __future__ import annotations

import logging
import sys
import traceback

import pytest

from adacompress.cloud_backends.base import AuthError
from adacompress.cloud_backends.redact import redact, register_secret
from adacompress.cloud_backends.registry import create_backend
from adacompress.errors import AdaCompressError

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


CREDENTIAL_PROCESS = """\
import datetime, json, pathlib, secrets, sys
token = "FwoGZXIvYXdzE" + secrets.token_hex(24)
with open(sys.argv[1], "a") as issued:
    issued.write(token + "\\n")
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({"Version": 1, "AccessKeyId": sys.argv[2], "SecretAccessKey": sys.argv[3],
                  "SessionToken": token, "Expiration": expires.isoformat()}))
"""


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_a_rotated_session_token_never_reaches_a_log_line(provider, fake, make_backend, images, caplog,
                                                          monkeypatch, tmp_path):
    """Role, SSO and instance credentials refresh: every token botocore ever signs with must be masked.

    The credentials expire within botocore's mandatory refresh window, so each call runs the
    credential process again and signs with a token nobody knew at start-up.
    """
    script, issued = tmp_path / "credentials.py", tmp_path / "issued-tokens.txt"
    script.write_text(CREDENTIAL_PROCESS)
    env = fake.env()
    config = tmp_path / "aws-config"
    config.write_text(f"[profile rotating]\ncredential_process = {sys.executable} {script} {issued} "
                      f"{env['AWS_ACCESS_KEY_ID']} {env['AWS_SECRET_ACCESS_KEY']}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "rotating")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    caplog.set_level(logging.DEBUG)
    backend = make_backend()
    for seed in range(3):
        backend.recognize(images.jpeg(seed))
    tokens = issued.read_text().split()
    assert len(tokens) >= 3, "the token rotated on every call"
    assert any("X-Amz-Security-Token" in r.getMessage() for r in caplog.records if r.name.startswith("botocore"))
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for token in tokens:
        assert token not in text


@pytest.mark.parametrize("line", [
    "headers={'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEJr//////////wEaCXVz', 'X-Amz-Date': b'20260101T000000Z'}",
    '<AssumeRoleResult><Credentials><SessionToken>IQoJb3JpZ2luX2VjEJr//////////wEaCXVz</SessionToken>'
    '<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey></Credentials>',
    '{"roleCredentials": {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",'
    ' "sessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz"}}',
    '{"Code": "Success", "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",'
    ' "Token": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz"}',
    "x-amz-security-token: IQoJb3JpZ2luX2VjEJr//////////wEaCXVz",
])
def test_redact_masks_aws_credentials_in_headers_and_credential_responses(line):
    cleaned = redact(line)
    assert "IQoJb3JpZ2luX2VjEJr" not in cleaned
    assert "wJalrXUtnFEMI" not in cleaned


@pytest.mark.parametrize(("provider", "option"), [
    ("baidu", "endpoint"), ("facepp", "endpoint"), ("google", "endpoint"), ("rekognition", "endpoint_url"),
], indirect=["provider"])
def test_a_plain_http_endpoint_off_loopback_is_refused(provider, fake, option, monkeypatch):
    with pytest.raises(AdaCompressError, match="ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS=1") as caught:
        create_backend(provider, cache="off", **{option: "http://vision.example.com:8080"})
    assert caught.value.code == "insecure_endpoint"
    assert "http://vision.example.com:8080" in str(caught.value) and "https://" in str(caught.value)
    create_backend(provider, cache="off", **{option: "https://vision.example.com"}).close()
    create_backend(provider, cache="off", **{option: "http://localhost:9"}).close()
    create_backend(provider, cache="off", **{option: "http://[::1]:9"}).close()
    monkeypatch.setenv("ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS", "1")
    create_backend(provider, cache="off", **{option: "http://vision.example.com:8080"}).close()
