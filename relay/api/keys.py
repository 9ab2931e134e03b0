"""/v1/api-keys: API keys as data, for admin keys (SPEC §10).

Thin: each route parses its input with relay.directory_models and calls
relay.operations.keys, where the rules live (shared with the console).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.api.common import answer, as_admin, body, query
from relay.directory_models import ApiKeyCreated, ApiKeyIn, ApiKeysQuery, key_of
from relay.operations import keys


async def list_keys(request: Request) -> JSONResponse:
    relay = as_admin(request)
    return answer(await keys.list_keys(relay, query(request, ApiKeysQuery)))


async def create_key(request: Request) -> JSONResponse:
    relay = as_admin(request)
    given = await body(request, ApiKeyIn)
    expires_at = None if given.expires_at is None else given.expires_at.timestamp()
    key, secret = await keys.create_key(relay, given.name, given.scopes, given.tenant,
                                        expires_at)
    return answer(ApiKeyCreated(**key_of(key).model_dump(), key=secret), 201)


async def revoke_key(request: Request) -> Response:
    await keys.revoke_key(as_admin(request), request.path_params["id"])
    return Response(status_code=204)
