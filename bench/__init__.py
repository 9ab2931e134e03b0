"""Benchmarks for relay, run with `python -m bench` (not part of the test suite).

Each scenario starts its own processes (receiver, clients, `relay serve`) so that the figures
include process boundaries and real sockets, as in production. See docs/benchmarks.md.
"""
