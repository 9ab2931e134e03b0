"""The commands run where relay's config and database are: serve, init, check, secret,
backup, migrate-storage."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from relay import config as cfgmod
from relay.cli.common import config_option, load


@click.command()
@config_option
def serve(config_path: str | None) -> None:
    """Run the appliance: ingest, API, queue and delivery in one process."""
    from relay import process

    loaded = load(config_path)
    host, port = loaded.config.server.host, loaded.config.server.port
    try:
        sock = process.bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    process.serve(loaded, sock)


@click.command()
@click.argument("path", default="relay.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter config to PATH (default ./relay.toml)."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    try:
        target.write_text(cfgmod.render_example(), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from None
    click.echo(f"wrote {target}; check it with: relay check --config {target}")


@click.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config file and print what it defines; exit 1 listing every error."""
    path = cfgmod.find_config(config_path)
    loaded = load(config_path)
    click.echo(f"{path or 'built-in defaults'}: ok")
    for line in cfgmod.describe(loaded):
        click.echo(f"  {line}")


@click.command()
@click.argument("endpoint_id")
@config_option
def secret(endpoint_id: str, config_path: str | None) -> None:
    """Print the signing secret of an endpoint defined in the config file."""
    from relay.delivery.endpoints import config_endpoints
    from relay.delivery.signing import generate_secret
    from relay.errors import StorageError
    from relay.storage import create_store

    loaded = load(config_path)
    if endpoint_id not in {ep.id for ep in loaded.config.endpoints}:
        raise click.ClickException(f"no endpoint {endpoint_id!r} in the config")

    async def read() -> str | None:
        store = create_store(loaded.config.storage)
        try:
            await store.open()  # not running: sync, so a generated secret exists
            await store.sync_config_endpoints(
                config_endpoints(loaded), time.time(), generate_secret
            )
        except StorageError:
            await store.close()
            store = create_store(loaded.config.storage, exclusive=False)  # relay serve runs
            await store.open()
        try:
            rows = {row.id: row for row in await store.list_endpoints()}
        finally:
            await store.close()
        row = rows.get(endpoint_id)
        return None if row is None else row.secret

    value = asyncio.run(read())
    if value is None:
        raise click.ClickException(
            f"endpoint {endpoint_id!r} is not in the database yet; start relay serve once"
        )
    click.echo(value)


@click.command(name="backup")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@config_option
def backup_command(path: str, force: bool, config_path: str | None) -> None:
    """Copy the database to PATH, safely while relay serve runs (SQLite online backup)."""
    from relay.storage import backup

    loaded = load(config_path)
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    events = backup(loaded.config.storage, target)
    click.echo(f"backed up {loaded.config.storage.path} to {target} "
               f"({events} events, {target.stat().st_size} bytes)")


@click.command(name="migrate-storage")
@click.option("--to", "target", required=True, metavar="URL",
              help="PostgreSQL database to copy into (empty): postgresql://user@host/db; "
              "the password from PGPASSWORD.")
@click.option("--from", "source", type=click.Path(dir_okay=False), metavar="PATH",
              help="SQLite database to copy (default: the config's [storage] path).")
@config_option
def migrate_storage(target: str, source: str | None, config_path: str | None) -> None:
    """Copy the SQLite database (endpoints with secrets, events, deliveries, attempts)
    into an empty PostgreSQL database. Stop relay serve first."""
    from relay.storage.copy import copy_to_postgres, count_rows

    path = Path(source or load(config_path).config.storage.path)
    totals = count_rows(path)
    with click.progressbar(length=sum(totals.values()), label="copying",
                           file=sys.stderr) as bar:
        copied = asyncio.run(copy_to_postgres(path, target, lambda _t, n: bar.update(n)))
    click.echo(f"copied {path} into PostgreSQL: " + ", ".join(
        f"{n} {table}" for table, n in copied.items()))
    click.echo('now set [storage] url (or url_env) in the config, remove path, and start '
               "relay serve")

