"""Event-type schemas over HTTP: ingest checks `data` (422 naming every violation, nothing
stored), batches name the event, GET /v1/event-types shows each schema, and a live edit
that breaks a schema is refused while the running schema stays."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.delivery import operational
from tests.helpers import assert_error
from tests.receiver import Receiver
from tests.serving import eventually, running

LEAD = {
    "type": "object",
    "required": ["lead_id", "qualification"],
    "properties": {
        "lead_id": {"type": "string", "pattern": "^lead_"},
        "email": {"type": "string", "format": "email"},
        "qualification": {
            "type": "object", "required": ["score"],
            "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}},
        },
    },
}
GOOD = {"lead_id": "lead_1", "email": "ana@example.com", "qualification": {"score": 0.9}}


def types(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": "lead.qualified", "schema": LEAD, "sample": GOOD, **extra},
            {"name": "lead.lost"}]


async def test_ingest_checks_data_against_the_schema(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        loaded = make_config(event_types=types(),
                             endpoints=[{"id": "crm", "url": f"{rx.url}/crm"}])
        async with running(loaded) as r:
            accepted = await r.send("lead.qualified", GOOD)
            assert accepted.status_code == 202, accepted.text
            [got] = await rx.wait_for(1, "/crm")
            assert got.json()["data"] == GOOD

            bad = {"lead_id": "x", "email": "not-an-address", "qualification": {"score": 1.5}}
            error = assert_error(await r.send("lead.qualified", bad), 422, "validation_failed")
            assert "lead.qualified" in error["message"]
            assert sorted((d["path"], d["message"]) for d in error["details"]) == [
                ("data.email", '"not-an-address" is not a "email"'),
                ("data.lead_id", '"x" does not match "^lead_"'),
                ("data.qualification.score", "1.5 is greater than the maximum of 1"),
            ]
            missing = assert_error(await r.send("lead.qualified", {"qualification": {}}),
                                   422, "validation_failed")
            assert sorted((d["path"], d["message"]) for d in missing["details"]) == [
                ("data", '"lead_id" is a required property'),
                ("data.qualification", '"score" is a required property'),
            ]
            # A type without a schema takes any object.
            assert (await r.send("lead.lost", {"anything": [1, {"x": None}]})).status_code == 202
            events = await r.relay.store.list_events("default", limit=10)
            assert sorted(e.type for e in events) == ["lead.lost", "lead.qualified"]


async def test_batch_with_bad_events_names_each_and_stores_nothing(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with running(make_config(event_types=types(), endpoints=[
            {"id": "crm", "url": "http://127.0.0.1:9/"}])) as r:
        good = {"type": "lead.qualified", "data": GOOD}
        bad_score = {"type": "lead.qualified",
                     "data": {**GOOD, "qualification": {"score": "high"}}}
        bad_type = {"type": "lead.unknown", "data": {}}
        response = await r.client.post("/v1/events/batch", json={
            "events": [good, bad_score, good, bad_type, good]})
        error = assert_error(response, 422, "validation_failed")
        assert [d["path"] for d in error["details"]] == [
            "events[1].data.qualification.score", "events[3].type"]
        assert error["details"][0]["message"] == '"high" is not of type "number"'
        assert await r.relay.store.counts() == {}
        assert await r.relay.store.list_events("default", limit=10) == []
        ok = await r.client.post("/v1/events/batch", json={"events": [good, good]})
        assert ok.status_code == 202, ok.text


async def test_event_types_list_their_schemas(
    make_config: Callable[..., cfgmod.Loaded], tmp_path: Path,
) -> None:
    file_schema = {"type": "object", "properties": {"amount": {"type": "integer"}}}
    (tmp_path / "paid.json").write_text(json.dumps(file_schema))
    loaded = cfgmod.load(_write(tmp_path, [
        *types(), {"name": "billing.paid", "schema_file": "paid.json", "sample": {"amount": 5}},
    ]))
    async with running(loaded) as r:
        listed = (await r.client.get("/v1/event-types")).json()
        assert [(t["name"], t["schema"]) for t in listed["data"]] == [
            ("lead.qualified", LEAD), ("lead.lost", None), ("billing.paid", file_schema),
            *((name, None) for name in operational.TYPES)]
        assert (await r.send("billing.paid", {"amount": 1.5})).status_code == 422
        assert (await r.send("billing.paid", {"amount": 2})).status_code == 202


def _write(tmp_path: Path, event_types: list[dict[str, Any]]) -> Path:
    """A relay.toml with these event types (tables written as inline JSON-shaped TOML)."""
    path = tmp_path / "relay.toml"
    lines = [f'[storage]\npath = "{tmp_path / "relay.db"}"\n']
    for event_type in event_types:
        lines.append("[[event_types]]")
        lines += [f"{key} = {_toml(value)}" for key, value in event_type.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture
def relay_log(caplog: pytest.LogCaptureFixture) -> Any:
    logger = logging.getLogger("relay")
    logger.propagate = True
    caplog.set_level("INFO", logger="relay")
    yield caplog


@pytest.mark.slow
async def test_live_edit_that_breaks_a_schema_is_refused(
    tmp_path: Path, relay_log: pytest.LogCaptureFixture,
) -> None:
    path = _write(tmp_path, types())
    async with running(cfgmod.load(path), watch=True) as r:
        out_of_range = {**GOOD, "qualification": {"score": 1.5}}
        assert (await r.send("lead.qualified", out_of_range)).status_code == 422

        # A valid edit applies: the maximum goes up to 2.
        wider = json.loads(json.dumps(LEAD))
        wider["properties"]["qualification"]["properties"]["score"]["maximum"] = 2
        _write(tmp_path, types(schema=wider))
        await eventually(lambda: r.relay.config.event_types[0].json_schema == wider, 10,
                         "the reload")
        assert (await r.send("lead.qualified", out_of_range)).status_code == 202

        # A broken schema is logged with its key path; the running schema stays.
        broken = json.loads(json.dumps(wider))
        broken["properties"]["qualification"]["properties"]["score"]["maximum"] = "two"
        _write(tmp_path, types(schema=broken))
        refused = await eventually(
            lambda: [rec for rec in relay_log.records if rec.msg == "config_reload"
                     and rec.fields.get("result") == "refused"], 10, "the refusal")
        assert ("event_types[0].schema.properties.qualification.properties.score.maximum: "
                '"two" is not of type "number"') in refused[0].fields["details"]
        assert r.relay.config.event_types[0].json_schema == wider
        assert (await r.send("lead.qualified", out_of_range)).status_code == 202
        too_high = {**GOOD, "qualification": {"score": 3}}
        assert (await r.send("lead.qualified", too_high)).status_code == 422

        # So is a sample that stops matching the schema, and the same goes for SIGHUP.
        _write(tmp_path, types(schema=wider, sample={"lead_id": "lead_2"}))
        assert not await r.relay.reload()
        assert r.relay.config.event_types[0].sample == GOOD
