"""The docs are checked against the code: the generated pages are current, and each config
key, CLI command and option, API route and error code appears in them. The walks below
read the code directly (not relay.docs), so a generator that skips something fails too."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel
from starlette.routing import Route

from relay import config as cfgmod
from relay import docs, errors, server
from relay.api import svix
from relay.cli import main

ROOT = Path(__file__).resolve().parents[1]


def read(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(docs.PAGES))
def test_checked_in_page_is_the_generated_one(name: str) -> None:
    assert (ROOT / name).read_text(encoding="utf-8") == docs.PAGES[name](), (
        f"{name} is out of date with the code; regenerate it: {docs.REGENERATE}")


def test_every_config_key_is_documented() -> None:
    text = read("configuration.md")
    for section, field in cfgmod.Config.model_fields.items():
        model = getattr(field.annotation, "__args__", [field.annotation])[0]
        assert issubclass(model, BaseModel)
        for name, info in model.model_fields.items():
            key = info.alias or name
            assert f"| `{section}.{key}` |" in text, f"{section}.{key}"


def _sections(text: str) -> dict[str, str]:
    """Markdown level-2 sections by title."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_cli_command_and_option_is_documented() -> None:
    sections = _sections(read("cli.md"))
    todo: list[tuple[str, click.Command]] = [("relay", main)]
    while todo:
        path, command = todo.pop()
        assert path in sections, f"no section for {path}"
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if isinstance(param, click.Option):
                    assert re.search(rf"(^|[ ,/]){re.escape(opt)}\b", sections[path], re.M), (
                        f"{path} {opt}")
        if isinstance(command, click.Group):
            todo += [(f"{path} {name}", sub) for name, sub in command.commands.items()]


def test_every_route_is_documented() -> None:
    text = read("api.md")
    for route in server.ROUTES:
        assert isinstance(route, Route), route
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)  # {id:event_id} -> {id}
        for method in (route.methods or set()) - {"HEAD"}:
            assert f"### `{method} {path}`" in text, f"{method} {path}"


def test_every_svix_route_is_in_docs_svix() -> None:
    """docs/svix.md names each path /api/v1 answers, served or not."""
    text = read("svix.md")
    for route in svix.ROUTES:
        assert isinstance(route, Route), route
        path = route.path.replace("{rest:path}", "")
        assert f"{path}`" in text or f"{path}..." in text or f"{path}," in text, path


def test_every_error_code_is_documented_with_its_status() -> None:
    text = read("api.md")
    classes = [errors.RelayError]
    for cls in classes:
        classes += [sub for sub in cls.__subclasses__() if sub.__module__ == errors.__name__]
    for cls in classes:
        row = re.search(rf"^\| `{cls.code}` \| ([^|]+) \|", text, re.M)
        assert row, f"{cls.__name__} ({cls.code}) is not in docs/api.md"
        # An error the API answers shows its status; the others say where they appear.
        assert row[1] == str(cls.status) or not row[1].isdigit(), cls.__name__
    for status, code in server._CODES.items():
        assert f"| `{code}` | {status} |" in text, code
    assert "| `http_error` |" in text
