"""The commands that call a running relay's HTTP API (send, status, deliveries, replay,
rotate-secret), and `listen`, a receiver to watch its deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from relay import config as cfgmod
from relay.cli.common import config_option
from relay.client import ApiError, Client
from relay.delivery.signing import SCHEMES
from relay.types import STATES

T = TypeVar("T")


def _default_url(config_path: str | None) -> str:
    """http:// + the config's server.listen, else relay's default. Only that key is read: a
    full load needs the server's environment (key_env, secret_env), which an operator's
    shell seldom has. A wildcard listen address is reached on loopback."""
    listen = "127.0.0.1:8080"
    path = cfgmod.find_config(config_path)
    if path is not None:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, AttributeError):
            server = tomllib.loads(path.read_text(encoding="utf-8")).get("server", {})
            listen = str(server.get("listen", listen))
    host, _, port = listen.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"http://{host}:{port}"


def api_options(command: Callable[..., None]) -> Callable[..., None]:
    """--url, --key and --config: where the running relay is and how to authenticate."""
    for option in reversed((
        click.option("--url", help="relay's address (default: from the config, else :8080)."),
        click.option("--key", envvar="RELAY_API_KEY", help="API key (default: $RELAY_API_KEY)."),
        config_option,
    )):
        command = option(command)
    return command


@contextlib.contextmanager
def _api(url: str | None, key: str | None, config_path: str | None) -> Iterator[Client]:
    """A client of the running relay; its errors (unreachable, 4xx/5xx) are RelayErrors."""
    with Client(url or _default_url(config_path), key) as client:
        yield client


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Left-aligned columns; None and "" shown as "-" so every column stays readable."""
    cells = [list(header)] + [["-" if v is None or v == "" else str(v) for v in row]
                              for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An instant: ISO-8601 (UTC when it has no offset) or a duration ago ("2h")."""
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return datetime.now(UTC) - timedelta(seconds=cfgmod.parse_duration(value))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO-8601 time (2026-04-14T16:29:48Z) nor a duration "
            "ago (30m, 2h, 7d)", ctx, param) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _endpoint_ids(api: Client, endpoint_id: str | None) -> list[str]:
    """The one endpoint asked for, else every endpoint the key can see."""
    return [endpoint_id] if endpoint_id else [hook["id"] for hook in api.webhooks()]


@click.command()
@click.argument("event_type")
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "idem", help="Idempotency key: a repeat answers the first event.")
@click.option("--tenant", help="Tenant (admin keys only; default: the key's tenant).")
@api_options
def send(event_type: str, data: str, idem: str | None, tenant: str | None, url: str | None,
         key: str | None, config_path: str | None) -> None:
    """Post one event to relay's ingest endpoint."""
    try:
        payload: dict[str, Any] = {"type": event_type, "data": json.loads(data)}
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--data is not valid JSON: {exc}") from None
    if idem:
        payload["id"] = idem
    if tenant:
        payload["tenant"] = tenant
    with _api(url, key, config_path) as api:
        body = api.post("/v1/events", payload)
    click.echo(json.dumps(body, indent=2))


def _health(hook: dict[str, Any]) -> str:
    if not hook["is_active"]:
        return f"disabled: {hook['disable_reason']}" if hook.get("disable_reason") else "disabled"
    return "paused" if hook["is_paused"] else "active"


@click.command()
@api_options
def status(url: str | None, key: str | None, config_path: str | None) -> None:
    """Show the queue depth by state and each endpoint's health."""
    with _api(url, key, config_path) as api:
        depth = api.queue_depth()
        hooks = list(api.webhooks())
    click.echo("deliveries: " + ", ".join(f"{state} {depth.get(state, 0)}" for state in STATES))
    if not hooks:
        click.echo("no endpoints")
    else:
        click.echo("")
        _table(("ENDPOINT", "SOURCE", "STATE", "LAST DELIVERY", "FAILURES", "PENDING"), [
            (h["id"], h["source"], _health(h),
             f"{h['last_delivery_at']} {h['last_delivery_status']}" if h.get("last_delivery_at")
             else "never",
             h["consecutive_failures"], h["pending"])
            for h in hooks
        ])
    _show_unsendable(hooks)
    _show_nodes(config_path)


def _show_unsendable(hooks: list[dict[str, Any]]) -> None:
    """Endpoints stored before relay checked headers and URLs, which break its rules:
    deliveries go out without the bad headers (relay.delivery.headers.sendable), and a
    bad URL is refused at every attempt, until the endpoint is fixed."""
    from relay.delivery.headers import sendable
    from relay.delivery.netguard import url_problem

    for h in hooks:
        problems = sendable(h["headers"], h.get("signature_header")).skipped
        if why := url_problem(h["url"]):
            problems.append(f"url is refused at every delivery: {why}")
        for what in problems:
            click.echo(f"{h['id']}: {what}; change the endpoint to fix it")


def _show_nodes(config_path: str | None) -> None:
    """With a shared PostgreSQL database: every relay process on it, and whether its
    config-file endpoints differ from the others' (the files must agree). Only [storage]
    is read from the config, as for --url."""
    from relay.storage import create_store

    path = cfgmod.find_config(config_path)
    if path is None:
        return
    try:
        storage = cfgmod.StorageConfig.model_validate(
            tomllib.loads(path.read_text(encoding="utf-8")).get("storage", {}))
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return  # relay check says what is wrong with it
    if storage.database_url(os.environ) is None:
        return

    async def read() -> list[Any]:
        store = create_store(storage)
        await store.open()
        try:
            return list(await store.nodes(time.time()))
        finally:
            await store.close()

    # Serving processes only (a CLI session like this one has no config digest).
    nodes = [n for n in asyncio.run(read()) if n.alive and n.config_digest]
    common = Counter(n.config_digest for n in nodes).most_common(1)
    click.echo("")
    _table(("PROCESS", "HOST", "PID", "VERSION", "UP SINCE", "CONFIG ENDPOINTS"), [
        (n.id, n.host, n.pid, n.version,
         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(n.started_at)),
         n.config_digest + ("" if n.config_digest == common[0][0] else " DIFFERS"))
        for n in nodes
    ])


def _show_delivery(d: dict[str, Any]) -> None:
    """One delivery; here `attempts` is the list of attempts, not their count."""
    attempts: list[dict[str, Any]] = d["attempts"]
    click.echo(f"{d['id']}  event {d['event_id']} -> {d['webhook_id']}  {d['status']}, "
               f"{len(attempts)} attempt(s)")
    click.echo(f"  created {d['created_at']}  updated {d['updated_at']}"
               + (f"  next attempt {d['next_attempt_at']}" if d.get("next_attempt_at") else ""))
    for a in attempts:
        outcome = a["status"] if a.get("status") is not None else "no response"
        click.echo(f"#{a['n']}  {a['at']}  {outcome}  {a['duration_ms']:.0f}ms"
                   + (f"  error: {a['error']}" if a.get("error") else ""))
        if a.get("response_body"):
            click.echo(f"    response: {a['response_body'][:200]}")


@click.command()
@click.option("--endpoint", "endpoint_id", metavar="ID",
              help="Only this endpoint's deliveries (default: every endpoint's).")
@click.option("--status", "state", type=click.Choice(STATES), help="Only those in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many.")
@click.option("--id", "delivery_id", metavar="DLV_ID",
              help="Show this one delivery with all its attempts instead.")
@api_options
def deliveries(endpoint_id: str | None, state: str | None, limit: int,
               delivery_id: str | None, url: str | None, key: str | None,
               config_path: str | None) -> None:
    """List deliveries, newest first, or show one with all its attempts."""
    with _api(url, key, config_path) as api:
        if delivery_id:
            _show_delivery(api.delivery(delivery_id))
            return
        found = [d for i in _endpoint_ids(api, endpoint_id)
                 for d in api.deliveries(i, state, limit)]
    # Each endpoint's list is newest first, so the merge's first `limit` are the newest.
    found.sort(key=lambda d: datetime.fromisoformat(d["created_at"]), reverse=True)
    if not found:
        click.echo("no deliveries")
        return
    _table(("DELIVERY", "EVENT", "ENDPOINT", "STATUS", "ATTEMPTS", "LAST", "UPDATED"), [
        (d["id"], d["event_id"], d["webhook_id"], d["status"], d["attempts"],
         d["last_status"] if d.get("last_status") is not None else (d.get("last_error") or "")[:60],
         d["updated_at"])
        for d in found[:limit]
    ])


def _each(items: Sequence[str], label: str, call: Callable[[str], T],
          ) -> tuple[list[T], list[str]]:
    """Run `call` on every item, under a progress bar on a terminal (output piped to a file
    or a script stays clean): what it returned, and one line per item the API refused. An
    unreachable relay stops the run, as every other item would fail the same way."""
    done: list[T] = []
    refused: list[str] = []
    bar: contextlib.AbstractContextManager[Iterable[str]] = (
        click.progressbar(items, label=label, file=sys.stderr) if sys.stderr.isatty()
        else contextlib.nullcontext(items))
    with bar as each:
        for item in each:
            try:
                done.append(call(item))
            except ApiError as exc:
                refused.append(f"{item}: {exc}")
    return done, refused


@click.command()
@click.argument("event_ids", nargs=-1, metavar="[EVT_ID]...")
@click.option("--endpoint", "endpoint_id", metavar="ID",
              help="Only to this endpoint (default: every endpoint concerned).")
@click.option("--since", callback=_time, metavar="TIME",
              help="Re-send failed deliveries of events from then on.")
@click.option("--until", callback=_time, metavar="TIME",
              help="... and before then (default: now).")
@api_options
def replay(event_ids: tuple[str, ...], endpoint_id: str | None, since: datetime | None,
           until: datetime | None, url: str | None, key: str | None,
           config_path: str | None) -> None:
    """Re-send deliveries: events by id, or what failed in a time window.

    \b
    relay replay EVT_ID... [--endpoint ID]
        Send those events again, to every endpoint they match (or to ID only).
    relay replay --since TIME [--until TIME] [--endpoint ID]
        Re-send the failed deliveries (retries exhausted) of events created in the
        window, to every endpoint (or to ID only): what an endpoint missed while it
        was down. Delivered ones are not sent again.

    Receivers get the original webhook-id, so they can de-duplicate. TIME is ISO-8601
    (2026-04-14T16:29:48Z; UTC without an offset) or a duration ago: 30m, 2h, 7d.
    """
    if bool(event_ids) == (since is not None):
        raise click.UsageError("give either event ids or --since, not both or neither")
    if until is not None and since is None:
        raise click.UsageError("--until needs --since")
    with _api(url, key, config_path) as api:
        if since is None:
            replayed, refused = _each(event_ids, "replaying events", lambda e: api.replay_event(
                e, [endpoint_id] if endpoint_id else None))
            click.echo(f"replayed {len(replayed)} event(s): "
                       f"{sum(map(len, replayed))} deliveries queued")
        else:
            end = until or datetime.now(UTC)
            failed = [d["id"] for i in _endpoint_ids(api, endpoint_id)
                      for d in api.deliveries(i, "failed")
                      if since <= datetime.fromisoformat(d["created_at"]) < end]
            failed.reverse()  # oldest first: an ordered (fifo) endpoint keeps event order
            retried, refused = _each(failed, "re-sending", api.retry)
            click.echo(f"re-sent {len(retried)} failed deliveries" if failed
                       else "nothing to re-send: no failed deliveries in that window")
    if refused:
        raise click.ClickException("\n  ".join([f"{len(refused)} refused:", *refused]))


@click.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--grace", metavar="DURATION",
              help="Keep signing with the old secret too for this long, e.g. 24h "
                   "(default: the old secret stops at once).")
@api_options
def rotate_secret(endpoint_id: str, grace: str | None, url: str | None, key: str | None,
                  config_path: str | None) -> None:
    """Give an endpoint a new signing secret and print it."""
    with _api(url, key, config_path) as api:
        result = api.rotate_secret(endpoint_id, grace)
    click.echo(result["secret"])
    if result.get("previous_expires_at"):
        click.echo(f"the previous secret keeps signing until {result['previous_expires_at']}",
                   err=True)


@click.command()
@click.option("--port", default=9000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--secret", "secret_value", help="Verify signatures with this secret.")
@click.option("--scheme", type=click.Choice(["auto", *(s for s in SCHEMES if s != "none")]),
              default="auto", show_default=True, help="Signature scheme to verify.")
@click.option("--header", "sig_header", help="Signature header of hmac-* schemes.")
@click.option("--status", default=200, show_default=True, type=click.IntRange(200, 599),
              help="Status to answer with.")
@click.option("--fail-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of requests (0-1) answered 500 instead, to watch retries.")
@click.option("--tolerance", default=300, show_default=True, type=click.IntRange(min=0),
              help="Seconds a signed timestamp may be off before it is flagged STALE.")
def listen(port: int, host: str, secret_value: str | None, scheme: str,
           sig_header: str | None, status: int, fail_rate: float, tolerance: int) -> None:
    """A development receiver: verify signatures and print each delivery."""
    from relay.listen import run

    run(host=host, port=port, secret=secret_value, scheme=scheme, header=sig_header,
        status=status, fail_rate=fail_rate, tolerance=tolerance)
