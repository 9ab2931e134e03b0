"""`relay check` on event-type schemas and filter operators, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import relay

CONFIG = """
[[event_types]]
name = "lead.qualified"
schema = { type = "object", properties = { score = { type = "numbr" } } }

[[event_types]]
name = "lead.lost"
schema_file = "schemas/lost.json"
sample = { reason = 5 }

[[endpoints]]
id = "crm"
url = "https://crm.example/"
filter = { "data.score" = { "$gte" = true }, "$or" = [{ "data.x" = { "$nope" = 1 } }] }
"""


def test_check_names_schema_sample_and_filter_errors(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    (config_dir / "schemas").mkdir(parents=True)
    (config_dir / "schemas" / "lost.json").write_text(json.dumps(
        {"type": "object", "properties": {"reason": {"type": "string"}}}))
    (config_dir / "relay.toml").write_text(CONFIG)
    # Run from elsewhere: schema_file is relative to the config file.
    done = relay("check", "--config", "etc/relay.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    lines = [line.strip() for line in done.stderr.splitlines()]
    assert lines[0] == "Error: etc/relay.toml: invalid configuration"
    assert [line.split(": ")[0] for line in lines[1:]] == [
        "event_types[0].schema.properties.score.type", "event_types[1].sample.reason",
        "endpoints[0].filter.data.score.$gte", "endpoints[0].filter.$or[0].data.x.$nope"]
    assert 'event_types[1].sample.reason: 5 is not of type "string"' in lines
    assert "endpoints[0].filter.data.score.$gte: must be a number or a string, not a " \
           "boolean" in lines

    fixed = (CONFIG.replace('"numbr"', '"number"').replace("reason = 5", 'reason = "lost"')
             .replace('{ "$gte" = true }', '{ "$gte" = 0.8 }').replace('"$nope"', '"$lt"'))
    (config_dir / "relay.toml").write_text(fixed)
    done = relay("check", "--config", "etc/relay.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "lead.qualified: data checked against its schema" in done.stdout
    assert "lead.lost: data checked against schemas/lost.json" in done.stdout
