"""The checks across keys, run once every table validated on its own: references
(tenants), uniqueness (ids, names), the environment variables named, secrets against
their signature scheme, endpoint URLs. relay.operations runs them on an API endpoint too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from relay.config.model import ApiKey, Config, Loaded
from relay.config.values import DEFAULT_TENANT
from relay.delivery.headers import clashes
from relay.delivery.signing import DEFAULT_HEADER, check_secret
from relay.errors import ConfigError

# Per table ("delivery", "endpoints[1]"), the keys that did not validate.
Invalid = Mapping[str, frozenset[str]]


def cross_check(cfg: Config, env: dict[str, str],
                invalid: Invalid | None = None) -> tuple[list[str], Loaded | None]:
    """Checks spanning keys (references, uniqueness, env vars, secrets, URLs).

    `invalid` names, per table, the keys that did not validate (`cfg` holds no real value
    for them): a check that reads one is skipped, as it could only report a consequence of
    an error already reported. Every other check runs."""
    from relay.delivery.netguard import check_url  # avoid import at module load
    from relay.errors import DestinationRefused

    bad = invalid or {}

    def ok(where: str, *keys: str) -> bool:
        return bad.get(where, frozenset()).isdisjoint(keys)

    errors: list[str] = []
    try:
        cfg.storage.database_url(env)
    except ConfigError as exc:
        errors += exc.details
    seen: set[str] = set()
    for i, tenant in enumerate(cfg.tenants):
        if ok(f"tenants[{i}]", "id"):
            if tenant.id in seen:
                errors.append(f"tenants[{i}].id: duplicate tenant {tenant.id!r}")
            seen.add(tenant.id)
    tenant_ids: set[str] | None = {DEFAULT_TENANT} | seen
    if not all(ok(where, "id") for where in ["tenants"] + [f"tenants[{i}]" for i in
                                                            range(len(cfg.tenants))]):
        tenant_ids = None  # an invalid tenant id: references to tenants go unchecked

    def check_tenant(where: str, tenant: str) -> None:
        if tenant_ids is not None and tenant not in tenant_ids:
            errors.append(f"{where}.tenant: unknown tenant {tenant!r}")

    if not cfg.api_keys and "api_keys" not in bad and ok("server", "listen") \
            and not cfg.server.is_loopback:
        errors.append(
            f"api_keys: required when listening beyond loopback ({cfg.server.listen}): "
            "without API keys every caller is an admin; add [[api_keys]], or listen on "
            "127.0.0.1")
    keys: list[ApiKey] = []
    for i, key in enumerate(cfg.api_keys):
        where = f"api_keys[{i}]"
        if ok(where, "tenant"):
            check_tenant(where, key.tenant)
        if not ok(where, "key_env", "key_sha256"):
            continue
        if key.key_sha256 is not None:
            digest = key.key_sha256
            if key.key_env is not None:
                errors.append(f"{where}: set exactly one of key_env or key_sha256")
                continue
        elif key.key_env is None:
            errors.append(f"{where}: set exactly one of key_env or key_sha256")
            continue
        else:
            value = env.get(key.key_env)
            if not value:
                errors.append(f"{where}.key_env: environment variable {key.key_env} is not set")
                continue
            digest = hashlib.sha256(value.encode()).hexdigest()
        if not bad.get(where):
            keys.append(ApiKey(key.name, digest, frozenset(key.scopes), key.tenant))

    seen = set()
    for i, event_type in enumerate(cfg.event_types):
        if ok(f"event_types[{i}]", "name"):
            if event_type.name in seen:
                errors.append(f"event_types[{i}].name: duplicate event type {event_type.name!r}")
            seen.add(event_type.name)

    secrets: dict[str, str] = {}
    seen = set()
    for i, ep in enumerate(cfg.endpoints):
        where = f"endpoints[{i}]"
        if ok(where, "id"):
            if ep.id in seen:
                errors.append(f"{where}.id: duplicate endpoint id {ep.id!r}")
            seen.add(ep.id)
        if ok(where, "tenant"):
            check_tenant(where, ep.tenant)
        if ok(where, "url") and ok("delivery", "allow_http"):
            try:
                check_url(ep.url, allow_http=cfg.delivery.allow_http, allow_private=True)
            except DestinationRefused as exc:
                errors.append(f"{where}.url: {exc.message}")
        secret = ep.secret if ok(where, "secret") else None
        if ok(where, "secret_env") and ep.secret_env is not None:
            if secret is not None:
                errors.append(f"{where}: set secret or secret_env, not both")
            secret = env.get(ep.secret_env)
            if not secret:
                errors.append(
                    f"{where}.secret_env: environment variable {ep.secret_env} is not set"
                )
        if secret and ok(where, "signature"):
            reason = check_secret(ep.signature, secret)
            source = "secret_env" if ep.secret_env else "secret"
            if reason:
                errors.append(f"{where}.{source}: {reason}")
            else:
                secrets[ep.id] = secret
        if (ep.signature_header is not None and ok(where, "signature_header", "signature")
                and ep.signature not in DEFAULT_HEADER):
            errors.append(f"{where}.signature_header: only used by the hmac-* signatures")
        if ok(where, "headers", "signature_header"):
            errors += [f"{where}.headers.{name}: {why}"
                       for name, why in clashes(ep.headers, ep.signature_header)]
    if errors or bad:
        return errors, None
    return [], Loaded(cfg, None, tuple(keys), secrets)

