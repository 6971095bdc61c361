"""Keep credentials out of log lines, ours and the HTTP libraries'.

httpx logs every request URL at INFO (Baidu's `access_token` travels in the query) and botocore
logs signed headers at DEBUG, including a session token that role, SSO and instance credentials
rotate. Backends register each secret they hold with `register_secret` (Rekognition registers
every token it signs with, as it signs); `protect_library_loggers` puts a filter on those
libraries' loggers that replaces registered secrets, credential-looking query parameters and
headers, and the credentials inside STS/SSO/IMDS responses with `***` before any handler sees
the record, so even a token nobody registered yet is masked.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
LIBRARY_LOGGERS = ("httpx", "httpcore", "hpack", "botocore", "boto3", "urllib3", "s3transfer",
                   "adacompress")
MIN_SECRET_CHARS = 4
"""Shorter strings are not treated as secrets: masking them would mangle ordinary text."""

_SENSITIVE_PARAMS = re.compile(
    r"(?i)(?<![\w-])(access_token|key|api_key|api_secret|client_id|client_secret|refresh_token"
    r"|x-amz-security-token|x-amz-credential)=([^&\s'\"<>]+)")
_AWS_CREDENTIAL = re.compile(r"(Credential=)[^/,\s'\"]+")
# Headers as botocore logs them (`'X-Amz-Security-Token': b'...'`) or as raw lines (`x-goog-api-key: ...`).
_SENSITIVE_HEADERS = re.compile(
    r"(?i)((?:x-amz-security-token|x-goog-api-key)['\"]?\s*[:=]\s*b?['\"]?)([^'\",\s}]+)")
# Credentials inside responses a credential refresh logs (STS XML, SSO / IMDS / container JSON).
_XML_CREDENTIAL = re.compile(r"(<(SessionToken|SecretAccessKey)>)[^<]+(</\2>)")
_JSON_CREDENTIAL = re.compile(
    r"(?i)(\"(?:sessionToken|secretAccessKey|token|accessToken|refresh_token|access_token)\"\s*:\s*\")[^\"]+(\")")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` in every filtered log line from now on."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with registered secrets, credential query parameters and AWS key ids masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _SENSITIVE_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _SENSITIVE_HEADERS.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _XML_CREDENTIAL.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = _JSON_CREDENTIAL.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", text)
    return _AWS_CREDENTIAL.sub(lambda m: f"{m.group(1)}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) with `redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def protect_library_loggers(roots: tuple[str, ...] = LIBRARY_LOGGERS) -> None:
    """Attach the filter to every existing logger under `roots` (idempotent).

    Logging filters apply only to records created on the logger they sit on, not to records
    propagated from children, so each child logger needs its own; call this after the
    libraries are imported (backends do it when they build their client).
    """
    names = [name for name in list(logging.root.manager.loggerDict) if name.split(".")[0] in roots]
    for name in {*roots, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
