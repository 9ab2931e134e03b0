"""The `relay` command. Thin commands over core calls; errors become messages in one place
(`_Cli.invoke`), tracebacks only with -v. The commands run where relay's config and
database are (`server.py`), or call a running relay's HTTP API (`api.py`); the `serve`
process itself is relay.process."""

from __future__ import annotations

import traceback
from typing import Any

import click

from relay import __version__
from relay.cli import api, server
from relay.errors import RelayError

# What click itself turns into a message and an exit code.
_CLICK_HANDLES = (click.ClickException, click.exceptions.Exit, click.Abort, EOFError,
                  BrokenPipeError)


class _Cli(click.Group):
    """The one place an error becomes what the operator reads. A RelayError prints its
    message (a ConfigError one `key.path: reason` line each) and exits 1; any other
    exception is a bug and prints one line; -v/--verbose adds the traceback to either."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, _CLICK_HANDLES):
                raise
            verbose = bool(ctx.params.get("verbose"))
            if verbose:
                click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
            if isinstance(exc, RelayError):
                raise click.ClickException(str(exc)) from None
            hint = "" if verbose else " (run relay -v ... to see the traceback)"
            raise click.ClickException(f"unexpected {type(exc).__name__}: {exc}{hint}") from None


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="relay")
@click.option("-v", "--verbose", is_flag=True,
              help="On an error, print its traceback too.")
def main(verbose: bool) -> None:  # `verbose` is read by _Cli.invoke
    """relay: a self-hosted webhook relay. Services POST events to it; it delivers each
    one, signed, to every subscribed endpoint, retrying with backoff."""


# docs/cli.md lists the commands in this order.
for _command in (server.serve, server.init, server.check, server.secret, server.backup_command,
                 server.migrate_storage, api.send, api.status, api.deliveries, api.replay,
                 api.rotate_secret, api.listen):
    main.add_command(_command)
