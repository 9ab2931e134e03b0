"""The `relay` command. Thin commands over core calls; errors printed, never tracebacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import uvicorn

from relay import __version__
from relay import config as cfgmod
from relay.errors import ConfigError, RelayError


def _fail(exc: RelayError) -> click.ClickException:
    return click.ClickException(str(exc))


def _load(option: str | None) -> cfgmod.Loaded:
    try:
        return cfgmod.load(cfgmod.find_config(option))
    except ConfigError as exc:
        raise _fail(exc) from None


@click.group()
@click.version_option(__version__, prog_name="relay")
def main() -> None:
    """relay: a self-hosted webhook relay. Services POST events to it; it delivers each
    one, signed, to every subscribed endpoint, retrying with backoff."""


config_option = click.option(
    "--config", "config_path", metavar="PATH",
    help="Config file (default: $RELAY_CONFIG, then ./relay.toml, else built-in defaults).",
)


# --- serve ----------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn, plus: SIGTERM/SIGINT make ingest answer 503 at once; SIGHUP reloads."""

    def __init__(self, config: uvicorn.Config, relay: Any) -> None:
        super().__init__(config)
        self.relay = relay

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.relay.stopping = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Our own handlers: uvicorn's re-raise the signal after serving, which would kill
        the process before relay's graceful stop runs."""
        loop = asyncio.get_running_loop()
        stops = (signal.SIGINT, signal.SIGTERM)
        for sig in stops:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.relay.reload()))
        try:
            yield
        finally:
            for sig in (*stops, signal.SIGHUP):
                loop.remove_signal_handler(sig)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@main.command()
@config_option
def serve(config_path: str | None) -> None:
    """Run the appliance: ingest, API, queue and delivery in one process."""
    import uvloop

    from relay.api.server import create_app
    from relay.app import SHUTDOWN_GRACE, Relay
    from relay.logs import configure, log

    loaded = _load(config_path)
    server_cfg = loaded.config.server
    configure(server_cfg.log_format)
    if not loaded.config.api_keys and not server_cfg.is_loopback:
        raise click.ClickException(
            f"refusing to listen on {server_cfg.listen} without API keys: add [[api_keys]] "
            "to the config, or listen on 127.0.0.1"
        )
    sock = _bind(server_cfg.host, server_cfg.port)

    async def run() -> None:
        relay = Relay(loaded, watch=True)
        try:
            await relay.start()
        except RelayError as exc:
            raise _fail(exc) from None
        try:
            server = _Server(
                uvicorn.Config(
                    create_app(relay), lifespan="off", log_config=None, access_log=False,
                    http="httptools", timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
                ),
                relay,
            )
            log("listening", url=f"http://{server_cfg.listen}", pid=os.getpid())
            await server.serve(sockets=[sock])
        finally:
            await relay.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


# --- config ---------------------------------------------------------------------------


@main.command()
@click.argument("path", default="relay.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter config to PATH (default ./relay.toml)."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    target.write_text(cfgmod.render_example(), encoding="utf-8")
    click.echo(f"wrote {target}; check it with: relay check --config {target}")


@main.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config file and print what it defines; exit 1 listing every error."""
    path = cfgmod.find_config(config_path)
    loaded = _load(config_path)
    click.echo(f"{path or 'built-in defaults'}: ok")
    for line in cfgmod.describe(loaded):
        click.echo(f"  {line}")


@main.command()
@click.argument("endpoint_id")
@config_option
def secret(endpoint_id: str, config_path: str | None) -> None:
    """Print the signing secret of an endpoint defined in the config file."""
    from relay.delivery.endpoints import from_config
    from relay.delivery.signing import generate_secret
    from relay.errors import StorageError
    from relay.storage.sqlite import SQLiteStore

    loaded = _load(config_path)
    if endpoint_id not in {ep.id for ep in loaded.config.endpoints}:
        raise click.ClickException(f"no endpoint {endpoint_id!r} in the config")

    async def read() -> str | None:
        store = SQLiteStore(loaded.config.storage.path)
        try:
            await store.open()  # not running: sync, so a generated secret exists
            await store.sync_config_endpoints(
                [from_config(ep, loaded.endpoint_secrets.get(ep.id))
                 for ep in loaded.config.endpoints],
                time.time(), generate_secret,
            )
        except StorageError:
            store = SQLiteStore(loaded.config.storage.path, lock=False)  # relay serve runs
            await store.open()
        try:
            rows = {row.id: row for row in await store.list_endpoints()}
        finally:
            await store.close()
        row = rows.get(endpoint_id)
        return None if row is None else row.secret

    try:
        value = asyncio.run(read())
    except RelayError as exc:
        raise _fail(exc) from None
    if value is None:
        raise click.ClickException(
            f"endpoint {endpoint_id!r} is not in the database yet; start relay serve once"
        )
    click.echo(value)


# --- clients --------------------------------------------------------------------------


def _default_url(config_path: str | None) -> str:
    path = cfgmod.find_config(config_path)
    listen = "127.0.0.1:8080"
    if path is not None:
        with contextlib.suppress(ConfigError):
            listen = cfgmod.load(path).config.server.listen
    return f"http://{listen}"


@main.command()
@click.argument("event_type")
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "idem", help="Idempotency key: a repeat answers the first event.")
@click.option("--tenant", help="Tenant (admin keys only; default: the key's tenant).")
@click.option("--url", help="relay's address (default: from the config, else :8080).")
@click.option("--key", envvar="RELAY_API_KEY", help="API key (default: $RELAY_API_KEY).")
@config_option
def send(event_type: str, data: str, idem: str | None, tenant: str | None, url: str | None,
         key: str | None, config_path: str | None) -> None:
    """Post one event to relay's ingest endpoint."""
    import httpx

    try:
        payload: dict[str, Any] = {"type": event_type, "data": json.loads(data)}
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--data is not valid JSON: {exc}") from None
    if idem:
        payload["id"] = idem
    if tenant:
        payload["tenant"] = tenant
    base = url or _default_url(config_path)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(f"{base.rstrip('/')}/v1/events", json=payload, headers=headers,
                              timeout=10)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach relay at {base}: {exc}") from None
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else {"raw": response.text}
    if response.status_code >= 400:
        error = body.get("error", {})
        lines = [f"{response.status_code} {error.get('code', '')}: {error.get('message', '')}"]
        lines += [f"  {d.get('path', '')}: {d.get('message', '')}" if isinstance(d, dict)
                  else f"  {d}" for d in error.get("details", [])]
        raise click.ClickException("\n".join(lines))
    click.echo(json.dumps(body, indent=2))


@main.command()
@click.option("--port", default=9000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--secret", "secret_value", help="Verify signatures with this secret.")
@click.option("--scheme", type=click.Choice(["auto", "standard-webhooks",
              "hmac-sha256-timestamped", "hmac-sha256-body"]), default="auto",
              show_default=True, help="Signature scheme to verify.")
@click.option("--header", "sig_header", help="Signature header of hmac-* schemes.")
@click.option("--status", default=200, show_default=True, help="Status to answer with.")
@click.option("--fail-rate", default=0.0, show_default=True,
              help="Share of requests (0-1) answered 500 instead, to watch retries.")
def listen(port: int, host: str, secret_value: str | None, scheme: str,
           sig_header: str | None, status: int, fail_rate: float) -> None:
    """A development receiver: verify signatures and print each delivery."""
    from relay.listen import run

    run(host=host, port=port, secret=secret_value, scheme=scheme, header=sig_header,
        status=status, fail_rate=fail_rate)

