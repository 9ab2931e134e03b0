"""When a stored console or portal session is live, and when its use is written: the pure
decision both stores' purges and every console request apply (no database here)."""

from __future__ import annotations

import pytest

from relay import config as cfgmod
from relay.directory import of_file
from relay.sessions import decide, granted, new_session, subjects, touch_every
from relay.types import SessionRow
from tests.helpers import sha

HOUR = 3600.0
T0 = 1_800_000_000.0


def row(last_seen: float, expires: float = T0 + 12 * HOUR) -> SessionRow:
    return SessionRow("n", "o", "abc", T0, last_seen, expires)


@pytest.mark.parametrize(("last_seen", "now", "idle", "expected"), [
    (T0, T0, HOUR, "live"),  # just signed in
    (T0, T0 + 59, HOUR, "live"),  # used within the last minute: nothing to write
    (T0, T0 + 60, HOUR, "touch"),  # a minute since the recorded use: write it
    (T0, T0 + HOUR - 1, HOUR, "touch"),
    (T0, T0 + HOUR, HOUR, "idle"),  # idle for session_idle: dead
    (T0 + 11 * HOUR, T0 + 12 * HOUR - 1, HOUR, "touch"),  # busy till the end of its life
    (T0 + 12 * HOUR - 1, T0 + 12 * HOUR, HOUR, "expired"),  # then dead however busy
    (T0, T0 + 29, 300.0, "live"),  # a short idle: written every tenth of it (30 s)
    (T0, T0 + 30, 300.0, "touch"),
    (T0, T0 + 300, 300.0, "idle"),
    (T0 + 100, T0 + 50, HOUR, "live"),  # the clock stepped back: live, nothing written
])
def test_decide(last_seen: float, now: float, idle: float, expected: str) -> None:
    assert decide(row(last_seen), now, idle) == expected


def test_touch_every_is_a_minute_or_a_tenth_of_the_idle_time() -> None:
    assert touch_every(HOUR) == 60.0
    assert touch_every(120.0) == 12.0


def test_the_config_grants_admin_keys_and_enabled_tenants() -> None:
    loaded = cfgmod.validate({
        "tenants": [{"id": "acme"}, {"id": "frozen", "webhooks_enabled": False}],
        "api_keys": [{"name": "a", "key_sha256": sha("admin"), "scopes": ["admin"]},
                     {"name": "r", "key_sha256": sha("read"), "scopes": ["webhooks:read"]}],
    }, {})
    directory = of_file(loaded)
    assert subjects(directory) == {"o": {sha("admin")[:16]}, "p": {"default", "acme"}}
    assert granted(directory, new_session("o", sha("admin")[:16], T0, False))
    for kind, subject in (("o", sha("read")[:16]), ("o", "-"), ("p", "frozen"), ("p", "gone")):
        assert not granted(directory, new_session(kind, subject, T0, False))  # type: ignore[arg-type]
    assert granted(directory, new_session("a", "-", T0, False))
    open_relay = of_file(cfgmod.validate({}, {}))
    assert subjects(open_relay)["o"] == {"-"}
