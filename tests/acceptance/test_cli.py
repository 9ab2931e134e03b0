"""The `relay` command as a user runs it: a subprocess, exit codes, messages."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import click
from click.testing import CliRunner

from relay import cli
from relay import config as cfgmod
from tests.helpers import relay
from tests.receiver import Receiver
from tests.serving import ServeProcess, free_port, serve_toml


def test_init_then_check(tmp_path: Path) -> None:
    done = relay("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "relay.toml").read_text() == cfgmod.render_example()
    again = relay("init", cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr
    checked = relay("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "relay.toml: ok" in checked.stdout and "endpoints: 0" in checked.stdout


def test_check_lists_every_error_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("""
[delivery]
timeout = "ten"
[[endpoints]]
id = "ok"
url = "https://ok.example/"
[[endpoints]]
id = "x"
url = "https://x.example/"
signature = "md5"
colour = "blue"
""")
    done = relay("check", "--config", "bad.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "Error: bad.toml: invalid configuration"
    assert any(line.strip().startswith("delivery.timeout: 'ten' is not a duration")
               for line in lines)
    assert any(line.strip().startswith("endpoints[1].signature:") for line in lines)
    assert any(line.strip() == "endpoints[1].colour: unknown key" for line in lines)


ISSUE_EXAMPLE = """
[[endpoints]]
id = "crm"
url = "not a url"
events = "lead.*"
"""
ISSUE_ERRORS = """\
Error: bad.toml: invalid configuration
  endpoints[0].events: Input should be a valid list
  endpoints[0].url: scheme '(none)' is not allowed: use https://
"""


def test_check_reports_a_type_error_and_a_bad_url_together(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(ISSUE_EXAMPLE)
    done = relay("check", "--config", "bad.toml", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", ISSUE_ERRORS)


def test_verbose_adds_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(ISSUE_EXAMPLE)
    done = relay("-v", "check", "--config", "bad.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert "relay.errors.ConfigError: bad.toml: invalid configuration\n" in done.stderr
    assert done.stderr.endswith("\n" + ISSUE_ERRORS)


def test_init_into_a_missing_directory_says_so(tmp_path: Path) -> None:
    done = relay("init", "nowhere/relay.toml", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        1, "Error: cannot write nowhere/relay.toml: No such file or directory\n")


def _crashing() -> click.Group:
    """relay's own group class and options, with one command that has a bug."""
    def crash() -> None:
        raise ZeroDivisionError("division by zero")
    return cli._Cli("relay", commands=[click.Command("crash", callback=crash)],
                    params=cli.main.params)


def test_an_unexpected_error_is_one_line_without_verbose() -> None:
    result = CliRunner().invoke(_crashing(), ["crash"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("Error: unexpected ZeroDivisionError: division by zero "
                             "(run relay -v ... to see the traceback)\n")


def test_an_unexpected_error_with_verbose_has_its_traceback() -> None:
    result = CliRunner().invoke(_crashing(), ["--verbose", "crash"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2:] == ["ZeroDivisionError: division by zero",
                          "Error: unexpected ZeroDivisionError: division by zero"]


def test_usage_errors_stay_clicks() -> None:
    result = CliRunner().invoke(_crashing(), ["nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.stderr


def test_check_and_serve_refuse_public_listen_without_keys(tmp_path: Path) -> None:
    """The rule is the config's: `relay check` does not call such a file ok."""
    (tmp_path / "relay.toml").write_text('[server]\nlisten = "0.0.0.0:8080"\n'
                                         'public_url = "https://relay.example.com"\n')
    for command in ("check", "serve"):
        done = relay(command, cwd=tmp_path)
        assert done.returncode == 1, done.stdout
        assert "api_keys: required when listening beyond loopback (0.0.0.0:8080): without " \
            "API keys every caller is an admin" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "relay.db").exists()


def test_a_wildcard_listen_needs_public_url(tmp_path: Path) -> None:
    """Listening on every address, relay cannot know its own names: check and serve say
    so, naming the key, before anything starts."""
    (tmp_path / "relay.toml").write_text('[server]\nlisten = "0.0.0.0:8080"\n'
                                         '[[api_keys]]\nname = "a"\nkey_sha256 = "'
                                         + "0" * 64 + '"\nscopes = ["admin"]\n')
    for command in ("check", "serve"):
        done = relay(command, cwd=tmp_path)
        assert done.returncode == 1, done.stdout
        assert "server.public_url: required when listening on every address" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "relay.db").exists()


def test_secret_prints_the_generated_secret(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text(
        '[[endpoints]]\nid = "crm"\nurl = "https://crm.example/"\n')
    first = relay("secret", "crm", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    secret = first.stdout.strip()
    assert secret.startswith("whsec_")
    assert relay("secret", "crm", cwd=tmp_path).stdout.strip() == secret
    missing = relay("secret", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "no endpoint 'nope'" in missing.stderr


async def test_serve_on_defaults_send_and_sigterm(tmp_path: Path) -> None:
    """`relay serve` with a config, `relay send`, SIGTERM: the in-flight delivery finishes
    and the process exits cleanly; a second serve on the same database is refused."""
    async with Receiver() as rx:
        port = free_port()
        config = tmp_path / "relay.toml"
        config.write_text(serve_toml(port, rest=f'[[endpoints]]\nid = "slow"\n'
                                                  f'url = "{rx.url}/slow/1"\n'))
        proc = ServeProcess(config, port, tmp_path)
        await proc.start()
        try:
            sent = await asyncio.to_thread(
                relay, "send", "lead.qualified", "--data", '{"a": 1}', cwd=tmp_path)
            assert sent.returncode == 0, sent.stderr
            assert '"deliveries": 1' in sent.stdout
            await rx.wait_for(1, "/slow/1")  # the request is in flight now

            other = tmp_path / "other.toml"
            other.write_text(config.read_text().replace(str(port), str(free_port())))
            second = await asyncio.to_thread(relay, "serve", "--config", "other.toml",
                                             cwd=tmp_path)
            assert second.returncode == 1
            assert "in use by another relay process" in second.stderr
        finally:
            code = await asyncio.to_thread(proc.terminate)
        assert code == 0
        log = proc.log.read_text()
        assert "action=attempt" in log and "outcome=succeeded" in log
        # Nothing left pending: the attempt finished within the shutdown grace.
        db = tmp_path / "relay.db"
        states = dict(sqlite3.connect(db).execute(
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall())
        assert states == {"succeeded": 1}
        bad = await asyncio.to_thread(relay, "send", "x", "--url", f"http://127.0.0.1:{port}",
                                      cwd=tmp_path)
        assert bad.returncode == 1 and "cannot reach relay" in bad.stderr


async def test_backup_of_a_live_database(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n'
                      '[[endpoints]]\nid = "e"\nurl = "https://e.example/"\nenabled = false\n')
    proc = ServeProcess(config, port, tmp_path)
    await proc.start()
    try:
        for i in range(3):
            sent = await asyncio.to_thread(relay, "send", "a.b", "--data", f'{{"n": {i}}}',
                                           cwd=tmp_path)
            assert sent.returncode == 0, sent.stderr
        done = await asyncio.to_thread(relay, "backup", "copy.db", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "(3 events" in done.stdout
        again = await asyncio.to_thread(relay, "backup", "copy.db", cwd=tmp_path)
        assert again.returncode == 1 and "exists" in again.stderr
    finally:
        assert await asyncio.to_thread(proc.terminate) == 0
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'held'").fetchone() == (3,)
    copy.close()
    assert not (tmp_path / "copy.db.partial").exists()
