"""Fake servers of each cloud API, for offline tests and dry runs."""
