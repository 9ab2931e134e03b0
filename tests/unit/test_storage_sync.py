"""`[storage] sync`: the durability of an acknowledged event is the operator's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError


def test_sync_is_full_unless_chosen(tmp_path: Path) -> None:
    assert cfgmod.load(None).config.storage.sync == "full"
    path = tmp_path / "relay.toml"
    path.write_text('[storage]\nsync = "normal"\n')
    assert cfgmod.load(path).config.storage.sync == "normal"


def test_check_refuses_an_unknown_sync_mode_with_its_key_path(tmp_path: Path) -> None:
    """What `relay check` runs: the error names the key and the accepted values."""
    path = tmp_path / "relay.toml"
    path.write_text('[storage]\nsync = "off"\n')
    with pytest.raises(ConfigError) as caught:
        cfgmod.load(path)
    [detail] = [str(d) for d in caught.value.details]
    assert detail.startswith("storage.sync: ")
    assert "'full'" in detail and "'normal'" in detail
