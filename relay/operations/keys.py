"""API keys as data (SPEC §10): what /v1/api-keys and the console do, each rule once.
Free of HTTP: callers authorise (an admin's operations) and translate.

A new key is shown once, in the answer that makes it; relay keeps its SHA-256 only, as
the file's `key_sha256`. Lists carry no key material. Revoking deletes the key: this
process refuses it when the call returns, every other one within a second. The file's
keys are listed (without an id) and managed in the file.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from relay.config import Scope
from relay.config.values import ID_RE
from relay.directory import Key, key_of
from relay.directory_models import ApiKeyOut, ApiKeysQuery
from relay.directory_models import key_of as answer_of
from relay.errors import Unprocessable
from relay.ids import ulid
from relay.models import Page
from relay.operations.pages import Order, sorted_page
from relay.runtime import Relay
from relay.storage.directory import no_key
from relay.types import ApiKeyRow

KEY_PREFIX = "rk_"  # says what a leaked string is (secret scanners, logs' key_prefix)


def generate_key() -> str:
    """A new API key: `rk_` and 32 random bytes, base64url without padding."""
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


async def list_keys(relay: Relay, query: ApiKeysQuery) -> Page[ApiKeyOut]:
    """The file's keys as it lists them, then data's in creation order (of one tenant
    with `query.tenant`)."""
    keys: list[tuple[Order, Key]] = [
        ((0, i, "") if k.source == "config" else (1, k.created_at, k.id or ""), k)
        for i, k in enumerate(relay.directory.keys.values())]
    wanted = [(order, k) for order, k in keys if query.tenant in (None, k.tenant)]
    scope = f"api-keys {query.tenant or '*'}"
    data, cursor = await sorted_page(relay, scope, wanted, query)
    return Page[ApiKeyOut](data=[answer_of(k) for k in data], next=cursor)


async def create_key(relay: Relay, name: str, scopes: list[Scope], tenant: str,
                     expires_at: float | None) -> tuple[Key, str]:
    """A new key in a known tenant, expiring in the future if at all; the key itself
    is in this answer only. It works on this process when this returns."""
    now = relay.clock()
    problems = []
    if relay.directory.tenant(tenant) is None:
        problems.append({"path": "tenant", "message": f"unknown tenant {tenant!r}"})
    if expires_at is not None and expires_at <= now:
        problems.append({"path": "expires_at", "message": "must be in the future"})
    if problems:
        raise Unprocessable("the request has invalid fields", problems)
    key = generate_key()
    row = await relay.keeper.create_key(ApiKeyRow(
        "key_" + ulid(now), name, hashlib.sha256(key.encode()).hexdigest(),
        tuple(dict.fromkeys(scopes)), tenant, expires_at, now))
    return key_of(row), key


def get_key(relay: Relay, key_id: str) -> Key:
    """The key made through the API with this id (NotFound for any other id, the
    file's keys having none)."""
    found = next((k for k in relay.directory.keys.values() if k.id == key_id), None)
    if found is None:
        raise no_key(key_id)
    return found


async def revoke_key(relay: Relay, key_id: str) -> None:
    """Delete a key made through the API (NotFound for any other id; one no key can
    have, from a path, without asking the database)."""
    if not re.fullmatch(ID_RE, key_id):
        raise no_key(key_id)
    await relay.keeper.revoke_key(key_id)
