"""POST /v1/portal-sessions: admin keys get a signed, expiring, single-tenant link; the
signing key is relay's own, stored in the database, the same after a restart."""

from __future__ import annotations

import calendar
import time
import urllib.parse
from collections.abc import Callable

from relay import config as cfgmod
from relay import sessions
from tests.helpers import ACME, ADMIN, READER, api_config, assert_error, auth
from tests.serving import running


def token_of(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.path == "/ui/portal"
    [token] = urllib.parse.parse_qs(parsed.query)["token"]
    return token


async def test_admin_gets_a_signed_link_that_survives_a_restart(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    loaded = api_config(make_config, "http://127.0.0.1:9")
    async with running(loaded) as r:
        before = time.time()
        response = await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                       json={"tenant": "acme", "expires_in": "2h",
                                             "read_only": True})
        assert response.status_code == 201, response.text
        answer = response.json()
        assert set(answer) == {"url", "expires_at"}
        assert answer["url"].startswith(r.url + "/ui/portal?token=")
        token = token_of(answer["url"])
        expires = calendar.timegm(time.strptime(answer["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
        assert int(before) + 7200 <= expires <= time.time() + 7200
        key = await r.relay.secret_key(sessions.KEY_NAME, sessions.new_key)
        session = sessions.verify(key, token, time.time())
        assert session is not None
        assert (session.kind, session.tenant, session.read_only) == ("p", "acme", True)
        # Defaults: one hour, read-write.
        default = (await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                       json={"tenant": "default"})).json()
        session = sessions.verify(key, token_of(default["url"]), time.time())
        assert session is not None and not session.read_only
        assert 3590 < session.expires_at - time.time() <= 3600
    async with running(loaded) as r:  # the same database: the same key, the link still valid
        again = await r.relay.store.secret_key(sessions.KEY_NAME, sessions.new_key)
        assert again == key
        assert sessions.verify(again, token, time.time()) is not None
        # An altered token (another tenant) or another key does not verify.
        altered = token.replace("p.acme.", "p.default.", 1)
        assert sessions.verify(again, altered, time.time()) is None
        assert sessions.verify(sessions.new_key(), token, time.time()) is None
        assert sessions.verify(again, token, time.time() + 3 * 3600) is None  # expired


async def test_only_admin_keys_and_valid_bodies(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(api_config(make_config, "http://127.0.0.1:9")) as r:
        post = r.client.post
        assert_error(await post("/v1/portal-sessions", json={"tenant": "acme"}),
                     401, "unauthorized")
        for key in (READER, ACME):
            assert_error(await post("/v1/portal-sessions", json={"tenant": "acme"},
                                    headers=auth(key)), 403, "forbidden")
        error = assert_error(await post("/v1/portal-sessions", json={"tenant": "nobody"},
                                        headers=auth(ADMIN)), 422, "validation_failed")
        assert error["details"] == [{"path": "tenant", "message": "unknown tenant 'nobody'"}]
        for bad in ("31d", "0s", "soon"):
            error = assert_error(await post("/v1/portal-sessions", headers=auth(ADMIN),
                                            json={"tenant": "acme", "expires_in": bad}),
                                 422, "validation_failed")
            assert error["details"][0]["path"] == "expires_in"
        assert_error(await post("/v1/portal-sessions", json={"tenant": "frozen"},
                                headers=auth(ADMIN)), 403, "forbidden")
        assert_error(await post("/v1/portal-sessions", json={"tenant": "acme", "x": 1},
                                headers=auth(ADMIN)), 422, "validation_failed")
        key = await r.relay.store.secret_key(sessions.KEY_NAME, sessions.new_key)
        assert len(key) == 32
