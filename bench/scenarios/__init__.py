"""Importing this package registers every scenario (see bench.registry)."""

from bench.scenarios import delivery

__all__ = ["delivery"]
