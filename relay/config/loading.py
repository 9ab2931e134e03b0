"""Loading the config: find the file, read it, validate every table on its own, then run
the checks across keys (relay.config.checks); ConfigError lists every problem at once,
each at its key path (`endpoints[1].url: ...`), in the file's order.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from relay.config.checks import cross_check
from relay.config.model import Config, Loaded
from relay.config.values import key_path
from relay.errors import ConfigError

_S = TypeVar("_S", bound=BaseModel)


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


def _table(model: type[_S], raw: object, loc: tuple[int | str, ...], errors: list[str],
           context: dict[str, Any]) -> tuple[_S, frozenset[str]]:
    """Validate one table on its own; append one line per error to `errors`. Returns the
    model and the keys that did not validate. With some invalid, the model holds the valid
    keys' values (each validated alone: `allow_http = "no"` is False) and defaults for the
    rest, so the checks that read only valid keys still run on true values."""
    if not isinstance(raw, dict):
        errors.append(f"{key_path(loc)}: must be a table")
        return model.model_construct(), frozenset(model.model_fields)
    try:
        return model.model_validate(raw, context=context), frozenset()
    except ValidationError as exc:
        invalid = set()
        for err in exc.errors():
            path = tuple(p for p in err["loc"]
                         if not (isinstance(p, str) and p.startswith("function-")))
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(f"{key_path(loc + path)}: {message.removeprefix('Value error, ')}")
            invalid.add(str(path[0]))
    valid = {k: _field_adapter(model, k).validate_python(v) for k, v in raw.items()
             if k in model.model_fields and k not in invalid}
    return model.model_construct(**valid), frozenset(invalid)


def _in_section_order(lines: list[str]) -> list[str]:
    """Errors sorted by section, then by array index: the file's structure, top to bottom
    (lines of one table keep their order: its own keys first, then checks across keys)."""
    order = {name: i for i, name in enumerate(Config.model_fields)}

    def key(line: str) -> tuple[int, int]:
        match = re.match(r"(\w+)(?:\[(\d+)\])?", line)
        if match is None or match[1] not in order:
            return -1, -1  # unknown top-level keys first
        return order[match[1]], int(match[2] or -1)

    return sorted(lines, key=key)


def validate(data: dict[str, Any], env: dict[str, str] | None = None,
             config_dir: Path | None = None, listen: str | None = None) -> Loaded:
    """Validate parsed TOML; raise ConfigError listing every `key.path: reason`.
    `config_dir`: where relative paths in the file start (schema_file); default: here.
    `listen`: validate with this `server.listen` instead of the file's (a reload: relay
    stays bound where it is until a restart, and what depends on the address, such as
    whether API keys are required, is judged against that).

    Each table (a section, an item of an array section) is validated on its own, so an
    error in one hides nothing in another; the checks across keys then run on every value
    that validated (see cross_check)."""
    errors = [f"{key}: unknown key" for key in data if key not in Config.model_fields]
    if listen is not None and isinstance(data.get("server", {}), dict):
        data = {**data, "server": {**data.get("server", {}), "listen": listen}}
    context = {"config_dir": config_dir}
    invalid: dict[str, frozenset[str]] = {}
    parts: dict[str, Any] = {}
    for name, model, is_array in Config.sections():
        if name not in data:
            continue  # the default
        raw = data[name]
        if not is_array:
            parts[name], invalid[name] = _table(model, raw, (name,), errors, context)
        elif not isinstance(raw, list):
            errors.append(f"{name}: must be an array of tables ([[{name}]])")
            invalid[name] = frozenset(model.model_fields)
        else:
            parts[name] = []
            for i, item in enumerate(raw):
                part, invalid[f"{name}[{i}]"] = _table(model, item, (name, i), errors,
                                                         context)
                parts[name].append(part)
    invalid = {where: keys for where, keys in invalid.items() if keys}
    cfg = Config.model_construct(**parts) if invalid else Config.model_validate(parts)
    cross_errors, loaded = cross_check(cfg, dict(os.environ) if env is None else env, invalid)
    errors += cross_errors
    if loaded is None or errors:
        raise ConfigError("invalid configuration", _in_section_order(errors))
    return loaded


def load(path: Path | None, env: dict[str, str] | None = None,
         listen: str | None = None) -> Loaded:
    """Read and validate a config file; `None` means the embedded defaults. `listen`: as
    for `validate`."""
    if path is None:
        return validate({}, env, listen=listen)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte {raw[exc.start]:#04x} at line "
                          f"{line}, column {column}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        loaded = validate(data, env, path.parent, listen)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", exc.details) from None
    return Loaded(loaded.config, path, loaded.api_keys, loaded.endpoint_secrets)


def find_config(option: str | None) -> Path | None:
    """--config, then $RELAY_CONFIG, then ./relay.toml if it exists; else embedded defaults."""
    if option:
        return Path(option)
    if os.environ.get("RELAY_CONFIG"):
        return Path(os.environ["RELAY_CONFIG"])
    default = Path("relay.toml")
    return default if default.exists() else None

