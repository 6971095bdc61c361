"""Which provider endpoints we agree to talk to: https anywhere, plain http only on loopback.

Every request carries a credential (Baidu's token, Face++'s secret, Google's key, a SigV4
signature and session token) and the user's image; over plain http off the machine both cross
the network in clear text. Loopback http is how the fakes run, so it stays allowed; anything
else needs `ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS=1`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from adacompress.cloud_backends.base import BackendError
from adacompress.config import settings

ALLOW_VAR = "ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS"


class InsecureEndpoint(BackendError):
    """A plain-http endpoint off loopback, refused before any request is sent."""

    code = "insecure_endpoint"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, backend: str, setting: str) -> str:
    """Return `url` if we may send credentials to it; raise `InsecureEndpoint` naming the fix if not."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or "") and not settings().allow_insecure_endpoints:
        raise InsecureEndpoint(f"{backend}: refusing the plain-http endpoint {url} ({setting}): credentials and "
                               f"images would cross the network unencrypted; use https://, or set {ALLOW_VAR}=1 "
                               "if the link is private")
    return url
