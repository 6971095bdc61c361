"""The inference-estimate-retrain daemon and the upload proxy.

Their foundation: `store` (every Redis key, or the embedded in-process store) and `registry` (policy
versions every process follows). Nothing is imported here, so a worker that needs only `store` stays light.
"""
