"""The RelayError tree: every error core code raises.

    RelayError                     code, HTTP status, message, details
    ├── ConfigError                invalid config file (one "key.path: reason" per detail)
    ├── BadRequest (400)           malformed JSON
    ├── InvalidCursor (400)        `after` is not a cursor relay gave this caller
    ├── BadHost (400)              Host header missing, repeated or malformed
    ├── Unauthorized (401)         missing or unknown API key
    ├── Forbidden (403)            scope missing, tenant webhooks disabled
    │   └── CrossOrigin            a change sent from another site's page (Origin)
    ├── NotFound (404)
    ├── Conflict (409)             idempotency key reused with other content, read-only field
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── MisdirectedRequest (421)   Host names a host relay does not serve
    ├── Unprocessable (422)        well-formed JSON with invalid fields
    ├── TooManyRequests (429)      limits, ingest overload
    │   └── TooManyAuthFailures    repeated failed API keys from one address
    ├── Unavailable (503)          shutting down, storage failing
    ├── StorageError (503)         the database refused a write (disk full, read-only)
    └── DestinationRefused         a delivery URL the network guard refuses (not an HTTP error)

The API renders any of them through `relay.server.error_body`; the CLI prints the
message (and details) and exits 1.
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Something went wrong."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str | None = None, details: list[Any] | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details or []
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the answer carries besides the body."""
        return {}

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  {d}" for d in self.details)


class ConfigError(RelayError):
    """The configuration is invalid."""

    status = 500
    code = "config_invalid"


class BadRequest(RelayError):
    """The request body is not valid JSON."""

    status = 400
    code = "malformed_json"


class InvalidCursor(RelayError):
    """`after` is not a cursor relay handed to this caller for this list."""

    status = 400
    code = "invalid_cursor"


class BadHost(RelayError):
    """The Host header is missing, repeated, or not HOST[:PORT]."""

    status = 400
    code = "host_invalid"


class Unauthorized(RelayError):
    """Missing or unknown API key: send `Authorization: Bearer KEY`."""

    status = 401
    code = "unauthorized"


class Forbidden(RelayError):
    """This API key may not do that."""

    status = 403
    code = "forbidden"


class CrossOrigin(Forbidden):
    """A change sent from another site's page (its Origin or Referer is not relay's)."""

    code = "origin_not_allowed"


class NotFound(RelayError):
    """No such object."""

    status = 404
    code = "not_found"


class Conflict(RelayError):
    """The request conflicts with existing state."""

    status = 409
    code = "conflict"


class PayloadTooLarge(RelayError):
    """The request body is too large."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RelayError):
    """The request body must be JSON (Content-Type: application/json)."""

    status = 415
    code = "unsupported_media_type"


class Unprocessable(RelayError):
    """The request has invalid fields."""

    status = 422
    code = "validation_failed"


class MisdirectedRequest(RelayError):
    """The Host header names a host this relay does not serve ([server] allowed_hosts)."""

    status = 421
    code = "host_not_allowed"


class TooManyRequests(RelayError):
    """Too many requests; retry later."""

    status = 429
    code = "too_many_requests"


class TooManyAuthFailures(TooManyRequests):
    """Too many failed API keys from this address: keys are not checked until Retry-After."""

    code = "too_many_auth_failures"

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed authentications from this address: retry after "
                         f"{retry_after}s")
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after)}


class Unavailable(RelayError):
    """relay is shutting down; retry against the next instance or after restart."""

    status = 503
    code = "unavailable"


class StorageError(RelayError):
    """The database refused the write; nothing was stored."""

    status = 503
    code = "storage_unavailable"


class DestinationRefused(RelayError):
    """The delivery destination is not allowed."""

    status = 422
    code = "destination_refused"

