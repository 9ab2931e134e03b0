"""The event types page (the catalog, for everyone) and, for operators, the changes
/v1/event-types offers on the types made through the API: create, edit, deprecate,
delete after a confirm page. The file's and relay's own types are shown, never changed:
relay.operations.event_types decides, as for the API."""

from __future__ import annotations

import json
import urllib.parse

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.directory import EventType
from relay.errors import RelayError
from relay.models import EventTypeIn, EventTypePatch, invalid
from relay.operations import event_types as catalog
from relay.ui.answers import page, render, see_other
from relay.ui.forms import event_type_form, fields, form_errors, invalid_field
from relay.ui.security import Visit, admin_of, home_tenant, operations_for

EMPTY_FORM = {"name": "", "description": "", "sample": "", "schema": "", "deprecated": ""}


def _pretty(value: object) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _form_of(event_type: EventType) -> dict[str, str]:
    """A type as its edit form shows it."""
    return {"name": event_type.name, "description": event_type.description,
            "sample": _pretty(event_type.sample or None), "schema": _pretty(event_type.schema),
            "deprecated": "on" if event_type.deprecated else ""}


def _url(name: str) -> str:
    return "/ui/event-types/" + urllib.parse.quote(name, safe="")


@page
async def event_types(request: Request, visit: Visit) -> Response:
    tenant = home_tenant(visit)
    operations = operations_for(visit, tenant)
    return render(request, visit, "event_types.html", tenant=tenant,
                  types=operations.event_types())


def _invalid(request: Request, visit: Visit, form: dict[str, str], exc: RelayError,
             editing: EventType | None) -> Response:
    """The form again, as sent, each error beside its field (a 409 beside the name)."""
    errors = {"name": exc.message} if exc.status == 409 else form_errors(exc)
    return render(request, visit, "event_type_form.html", exc.status,
                  form={**EMPTY_FORM, **form}, errors=errors, editing=editing)


@page
async def new_event_type(request: Request, visit: Visit) -> Response:
    admin_of(visit, change=True)
    return render(request, visit, "event_type_form.html", form=EMPTY_FORM, errors={},
                  editing=None)


@page
async def create_event_type(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    form = fields(request)
    try:
        body = EventTypeIn.model_validate({"name": form.get("name", "").strip(),
                                           **event_type_form(form)})
        await catalog.create_event_type(relay, body.name, body.description, body.sample,
                                        body.schema_, body.deprecated)
    except ValidationError as exc:
        return _invalid(request, visit, form, invalid(exc), None)
    except RelayError as exc:
        if exc.status not in (409, 422):
            raise
        return _invalid(request, visit, form, exc, None)
    return see_other("/ui/event-types?done=type-created")


def _editable(visit: Visit, name: str) -> EventType:
    """A type made through the API; the operations' 409 for the file's and relay's."""
    return catalog.data_type(admin_of(visit, change=True), name)


@page
async def edit_event_type(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["name"])
    return render(request, visit, "event_type_form.html", form=_form_of(found), errors={},
                  editing=found)


@page
async def save_event_type(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["name"])
    form = {**fields(request), "name": found.name}
    try:
        patch = EventTypePatch.model_validate(event_type_form(form))
        changes = {k.rstrip("_"): v for k, v in patch.model_dump(exclude_unset=True).items()}
        await catalog.change_event_type(visit.relay, found.name, changes)
    except ValidationError as exc:
        return _invalid(request, visit, form, invalid(exc), found)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid(request, visit, form, exc, found)
    return see_other("/ui/event-types?done=saved")


_CHANGES = {"deprecate": True, "undeprecate": False}


@page
async def deprecate(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    wanted = fields(request).get("change", "")
    if wanted not in _CHANGES:
        raise invalid_field("change", f"one of {', '.join(_CHANGES)}")
    await catalog.change_event_type(relay, request.path_params["name"],
                                    {"deprecated": _CHANGES[wanted]})
    return see_other("/ui/event-types?done=saved")


@page
async def confirm_delete(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["name"])
    others = [n for n in visit.relay.directory.enforced if n != found.name]
    return render(request, visit, "event_type_delete.html", shown=found, others=others)


@page
async def delete_event_type(request: Request, visit: Visit) -> Response:
    await catalog.delete_event_type(admin_of(visit, change=True), request.path_params["name"])
    return see_other("/ui/event-types?done=type-deleted")
