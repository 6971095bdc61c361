"""The default composition of a cloud backend: cache over resilience over the raw client.

`build_stack(RawClass, options)` splits `create_backend`'s keyword options: retry-policy fields
go to `RetryPolicy`, cache settings to `open_cache` and `CachedBackend`, `price_per_1k_usd` to
the cost report, and the rest to the raw client, so `create_backend("baidu", qps=1, cache="off",
read_timeout_s=5)` works without each provider repeating the plumbing. A Redis URL (`redis_url=`
or `ADACOMPRESS_REDIS_URL`) also puts the provider limits in Redis, shared by every process.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.cache import DEFAULT_MODEL_CHECK_S, CachedBackend, open_cache
from adacompress.cloud_backends.cost import DEFAULT_PRICE_PER_1K_USD
from adacompress.cloud_backends.registry import UnknownBackend
from adacompress.cloud_backends.retry import ResilientBackend, RetryPolicy
from adacompress.cloud_backends.shared import open_limit_store
from adacompress.config import settings

CACHE_OPTIONS = ("cache", "redis_url", "cache_dir", "cache_prefix")
ENTRY_OPTIONS = ("cache_ttl_s", "cache_epoch", "model_check_s")
POLICY_OPTIONS = tuple(f.name for f in dataclasses.fields(RetryPolicy))


def accepted_options(raw_class: type[VisionBackend]) -> set[str]:
    """Keyword parameters of `raw_class`, following `**options` up to the base that names them."""
    names: set[str] = set()
    for klass in raw_class.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def build_stack(raw_class: type[VisionBackend], options: dict[str, Any],
                default_qps: float | None = None) -> VisionBackend:
    """`CachedBackend(ResilientBackend(raw_class(**rest), policy), cache)` from keyword options."""
    options = dict(options)
    name = raw_class.name
    variant = options.pop("variant", None)
    if variant:
        raise UnknownBackend(f"backend {name!r} has no variants (got {name}:{variant}); "
                             "pass options as keywords instead")
    policy = RetryPolicy(**{"qps": default_qps, **{k: options.pop(k) for k in POLICY_OPTIONS if k in options}})
    cache_options = {k: options.pop(k) for k in CACHE_OPTIONS if k in options}
    cache_options.setdefault("cache_prefix", settings().redis_prefix)  # one prefix for every key we write
    entry_options = {k: options.pop(k) for k in ENTRY_OPTIONS if k in options}
    price = options.pop("price_per_1k_usd", None)
    accepted = accepted_options(raw_class)
    unknown = sorted(set(options) - accepted)
    if unknown:
        known = sorted(accepted | set(POLICY_OPTIONS) | set(CACHE_OPTIONS) | set(ENTRY_OPTIONS)
                       | {"price_per_1k_usd"})
        raise TypeError(f"{name}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    raw = raw_class(**options)
    params = raw.cache_params()  # type: ignore[attr-defined]  # every cloud client defines it
    limits = open_limit_store(cache_options.get("redis_url") or settings().redis_url,
                              cache_options["cache_prefix"])
    stack = CachedBackend(ResilientBackend(raw, policy, limits), open_cache(**cache_options), params,
                          ttl_s=entry_options.get("cache_ttl_s"), epoch=entry_options.get("cache_epoch"),
                          model_check_s=entry_options.get("model_check_s", DEFAULT_MODEL_CHECK_S),
                          wait_s=policy.deadline_s)
    stack.price_per_1k_usd = DEFAULT_PRICE_PER_1K_USD.get(name, 0.0) if price is None else float(price)
    return stack
