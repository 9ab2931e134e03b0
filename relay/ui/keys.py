"""The operator's API key pages: the list (no key material), the form, the new key shown
once, and revoking after a confirm page, over relay.operations.keys as /v1/api-keys.
A portal session never reaches them; the file's keys have no id, so nothing here can
name one to change."""

from __future__ import annotations

import urllib.parse

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.config import SCOPES
from relay.directory_models import ApiKeyIn, ApiKeysQuery, key_of
from relay.errors import RelayError
from relay.models import invalid
from relay.operations import keys
from relay.ui.answers import PAGE, page, render, see_other
from relay.ui.forms import fields, form_errors, key_form, read_query
from relay.ui.security import Visit, admin_of


@page
async def key_list(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit)
    query = read_query(request, ApiKeysQuery, limit=PAGE)
    listed = await keys.list_keys(relay, query)
    return render(request, visit, "keys.html", page=listed, picked=query.tenant,
                  more=urllib.parse.urlencode({k: v for k, v in {
                      "tenant": query.tenant, "after": listed.next}.items() if v}))


_EMPTY = {"name": "", "tenant": "default", "expires_at": ""}


def _form(request: Request, visit: Visit, form: dict[str, str], errors: dict[str, str],
          status: int = 200) -> Response:
    return render(request, visit, "key_form.html", status, form={**_EMPTY, **form},
                  errors=errors, scopes=SCOPES)


@page
async def new_key(request: Request, visit: Visit) -> Response:
    admin_of(visit, change=True)
    return _form(request, visit, {"tenant": request.query_params.get("tenant", "default")}, {})


@page
async def create_key(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    form = fields(request)
    try:
        body = ApiKeyIn.model_validate(key_form(form))
        expires_at = None if body.expires_at is None else body.expires_at.timestamp()
        key, secret = await keys.create_key(relay, body.name, body.scopes, body.tenant,
                                            expires_at)
    except ValidationError as exc:
        return _form(request, visit, form, form_errors(invalid(exc)), 422)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _form(request, visit, form, form_errors(exc), 422)
    # The key in this answer only: never in a URL, a redirect or the history.
    return render(request, visit, "key_created.html", key=key_of(key), secret=secret)


@page
async def confirm_revoke(request: Request, visit: Visit) -> Response:
    found = keys.get_key(admin_of(visit, change=True), request.path_params["id"])
    return render(request, visit, "key_revoke.html", key=key_of(found),
                  own=visit.session.subject == found.sha256[:16])


@page
async def revoke_key(request: Request, visit: Visit) -> Response:
    await keys.revoke_key(admin_of(visit, change=True), request.path_params["id"])
    return see_other("/ui/api-keys?done=key-revoked")
