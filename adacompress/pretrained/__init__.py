"""Shipped agents and their model cards, as package data (read through `adacompress.agents.pretrained`)."""
