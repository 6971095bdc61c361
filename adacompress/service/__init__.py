"""The inference-estimate-retrain daemon and the upload proxy.

Foundation: `store` (every Redis key, or the embedded in-process store) and `registry` (policy versions every
process follows). The daemon: `daemon` (the per-request state machine), `rules` (ours and the paper's),
`input_drift`. The proxy: `proxy` (the app), `dropin` (the providers' routes), `decisions` (worker
processes), `metrics`, `assemble` (builds a serving process), `proxy_runner` (the proxy in process), and
`replay` (drift scenarios through either). Nothing is imported here, so a worker that needs only `store`
stays light.
"""
