"""The console's route table, mounted at /ui/ by relay.server."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from relay.ui import (
    deliveries,
    endpoints,
    event_types,
    events,
    keys,
    overview,
    signin,
    tenants,
)
from relay.ui.answers import HERE, theme

_T = "/t/{tenant}"
ROUTES: list[BaseRoute] = [
    Route("/", overview.overview, methods=["GET"]),
    Route("/login", signin.login, methods=["GET"]),
    Route("/login", signin.login_post, methods=["POST"]),
    Route("/logout", signin.logout, methods=["POST"]),
    Route("/portal", signin.portal, methods=["GET"]),
    Route("/theme.css", theme, methods=["GET"]),
    Route("/endpoints", endpoints.endpoints_home, methods=["GET"]),
    Route("/event-types", event_types.event_types, methods=["GET"]),
    Route("/event-types", event_types.create_event_type, methods=["POST"]),
    Route("/event-types/new", event_types.new_event_type, methods=["GET"]),
    Route("/event-types/{name}/edit", event_types.edit_event_type, methods=["GET"]),
    Route("/event-types/{name}/edit", event_types.save_event_type, methods=["POST"]),
    Route("/event-types/{name}/deprecate", event_types.deprecate, methods=["POST"]),
    Route("/event-types/{name}/delete", event_types.confirm_delete, methods=["GET"]),
    Route("/event-types/{name}/delete", event_types.delete_event_type, methods=["POST"]),
    Route("/tenants", tenants.tenant_list, methods=["GET"]),
    Route("/tenants", tenants.create_tenant, methods=["POST"]),
    Route("/tenants/new", tenants.new_tenant, methods=["GET"]),
    Route("/tenants/{id}", tenants.tenant, methods=["GET"]),
    Route("/tenants/{id}/edit", tenants.edit_tenant, methods=["GET"]),
    Route("/tenants/{id}/edit", tenants.save_tenant, methods=["POST"]),
    Route("/tenants/{id}/state", tenants.change_state, methods=["POST"]),
    Route("/tenants/{id}/delete", tenants.confirm_delete, methods=["GET"]),
    Route("/tenants/{id}/delete", tenants.delete_tenant, methods=["POST"]),
    Route("/api-keys", keys.key_list, methods=["GET"]),
    Route("/api-keys", keys.create_key, methods=["POST"]),
    Route("/api-keys/new", keys.new_key, methods=["GET"]),
    Route("/api-keys/{id}/revoke", keys.confirm_revoke, methods=["GET"]),
    Route("/api-keys/{id}/revoke", keys.revoke_key, methods=["POST"]),
    Route(f"{_T}/endpoints", endpoints.endpoints, methods=["GET"]),
    Route(f"{_T}/endpoints", endpoints.create_endpoint, methods=["POST"]),
    Route(f"{_T}/endpoints/new", endpoints.new_endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}", endpoints.endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/deliveries", endpoints.endpoint_deliveries, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/edit", endpoints.edit_endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/edit", endpoints.save_endpoint, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/state", endpoints.change_state, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/rotate", endpoints.rotate, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/test", endpoints.send_test, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/recover", endpoints.recover, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/delete", endpoints.delete_endpoint, methods=["POST"]),
    Route(f"{_T}/deliveries/{{id}}", deliveries.delivery, methods=["GET"]),
    Route(f"{_T}/deliveries/{{id}}/retry", deliveries.retry, methods=["POST"]),
    Route(f"{_T}/deliveries/{{id}}/cancel", deliveries.confirm_cancel, methods=["GET"]),
    Route(f"{_T}/deliveries/{{id}}/cancel", deliveries.cancel, methods=["POST"]),
    Route(f"{_T}/events", events.events, methods=["GET"]),
    Route(f"{_T}/events/{{id}}", events.event, methods=["GET"]),
    Route(f"{_T}/events/{{id}}/replay", events.replay, methods=["POST"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
]
