"""What the commands share: the --config option and loading the file it names."""

from __future__ import annotations

import click

from relay import config as cfgmod


def load(option: str | None) -> cfgmod.Loaded:
    return cfgmod.load(cfgmod.find_config(option))


config_option = click.option(
    "--config", "config_path", metavar="PATH",
    help="Config file (default: $RELAY_CONFIG, then ./relay.toml, else built-in defaults).",
)
