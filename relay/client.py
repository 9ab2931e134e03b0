"""A small client of relay's HTTP API, for the operator commands in `relay.cli`.

Synchronous on purpose: each command makes a handful of calls and prints. Every failure
becomes a `RelayError` whose message is what the operator should read, so the CLI can
print it and exit 1 without a traceback:

    RelayError
    ├── Unreachable     no answer at all (connection refused, DNS, timeout)
    └── ApiError        relay answered 4xx/5xx: "<status> <code>: <message>" + details
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from relay.errors import RelayError

PAGE = 100  # items per page when iterating a whole list

# One queue-depth sample of the Prometheus text: relay_deliveries{state="failed"} 3.0
_QUEUE_SAMPLE = re.compile(r'^relay_deliveries\{state="(\w+)"\}\s+(\S+)$', re.MULTILINE)


class Unreachable(RelayError):
    """relay did not answer."""

    code = "unreachable"


class ApiError(RelayError):
    """relay answered with an error; the message carries its status and code."""

    def __init__(self, status: int, code: str, message: str, details: list[Any]) -> None:
        self.status = status
        self.code = code
        lines = [f"{d.get('path', '')}: {d.get('message', '')}" if isinstance(d, dict)
                 else str(d) for d in details]
        super().__init__(f"{status} {code}: {message}", lines)


def _api_error(response: httpx.Response) -> ApiError:
    """The error of a 4xx/5xx answer; a body not in relay's error shape (a proxy's page,
    say) is shown as text, so the operator still sees what answered."""
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, error.get("code", ""), error.get("message", ""),
                        error.get("details") or [])
    except (ValueError, KeyError, TypeError, AttributeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return ApiError(response.status_code, "http_error", text, [])


class Client:
    """relay's API at `base_url`, authenticated with `key` when one is given."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None) -> httpx.Response:
        """One call; raises Unreachable or ApiError instead of returning an error answer."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach relay at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """A JSON object (every answer of the API is one; lists come as {"data", "next"})."""
        result: dict[str, Any] = self.request("GET", path, params=params).json()
        return result

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", path, json=body or {}).json()
        return result

    def iterate(self, path: str, limit: int | None = None,
                **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, in the API's order, up to `limit`."""
        after: str | None = None
        count = 0
        while True:
            size = PAGE if limit is None else min(PAGE, limit - count)
            page = self.get(path, limit=size, after=after, **params)
            for item in page["data"]:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            after = page.get("next")
            if not after or not page["data"]:
                return

    # --- the calls the commands make -------------------------------------------------

    def queue_depth(self) -> dict[str, int]:
        """Deliveries by state, read from /metrics (the API has no other aggregate)."""
        text = self.request("GET", "/metrics").text
        return {state: int(float(value)) for state, value in _QUEUE_SAMPLE.findall(text)}

    def webhooks(self) -> Iterator[dict[str, Any]]:
        return self.iterate("/v1/webhooks")

    def deliveries(self, webhook_id: str, status: str | None = None,
                   limit: int | None = None) -> Iterator[dict[str, Any]]:
        return self.iterate(f"/v1/webhooks/{webhook_id}/deliveries", limit, status=status)

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with its attempts."""
        return self.get(f"/v1/deliveries/{delivery_id}")

    def retry(self, delivery_id: str) -> dict[str, Any]:
        return self.post(f"/v1/deliveries/{delivery_id}/retry")

    def replay_event(self, event_id: str, endpoints: list[str] | None = None,
                     ) -> list[dict[str, Any]]:
        """Re-send an event (to `endpoints` only, if given); the new deliveries."""
        body = {"endpoints": endpoints} if endpoints else {}
        result: list[dict[str, Any]] = self.post(f"/v1/events/{event_id}/replay", body)[
            "deliveries"]
        return result

    def rotate_secret(self, webhook_id: str, grace: str | None = None) -> dict[str, Any]:
        """{"secret", "previous_expires_at"}: the old secret signs too until then."""
        return self.post(f"/v1/webhooks/{webhook_id}/rotate-secret",
                         {"grace": grace} if grace else {})
