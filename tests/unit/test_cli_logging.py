"""The CLI's logging: -v/--verbose and AMILI_LOG, and one stderr line per retry by default,
so a command pointed at a closed port says what it is doing instead of sitting silent."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from amili_async._cli._args import Parser, log_level


def closed_port() -> int:
    """A loopback port nothing listens on: bound to port 0 for a free one, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_export(
    tmp_path: Path, *flags: str, log: str | None = None
) -> subprocess.CompletedProcess[str]:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_")}
    env |= {"AMILI_CLIENT_ID": "cli-id", "AMILI_CLIENT_SECRET": "cli-secret-value"}
    if log is not None:
        env["AMILI_LOG"] = log
    url = f"http://127.0.0.1:{port}"
    command = [
        *(sys.executable, "-m", "amili_async", *flags, "export", "invoices", "--org", "o1"),
        *("--out", str(tmp_path / "out.jsonl"), "--base-url", f"{url}/v1"),
        *("--token-url", f"{url}/token", "--max-retries", "2", "--retry-for", "0"),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_each_retry_is_one_line_on_stderr_by_default(tmp_path: Path) -> None:
    run = run_export(tmp_path)
    assert run.returncode == 1
    retries = [line for line in run.stderr.splitlines() if "retrying" in line]
    pattern = (
        r"amili-async: retrying POST /token in [0-9.]+ s: connection refused to "
        r"127\.0\.0\.1:\d+ \(attempt ({}) of 3\)"
    )
    assert [
        re.fullmatch(pattern.format(n), line) is not None
        for n, line in zip("23", retries, strict=True)
    ] == [True, True]
    assert "cli-secret-value" not in run.stderr


def test_amili_log_warning_quiets_the_retry_lines(tmp_path: Path) -> None:
    run = run_export(tmp_path, log="warning")
    assert run.returncode == 1
    assert "retrying" not in run.stderr
    assert "error:" in run.stderr  # the failure itself is still said


def test_verbose_shows_each_failed_attempt(tmp_path: Path) -> None:
    run = run_export(tmp_path, "-v")
    assert run.returncode == 1
    assert re.search(r"POST /token failed after [0-9.]+ ms: ClientConnectorError", run.stderr)


@pytest.mark.parametrize(
    ("verbose", "env", "level"),
    [
        (0, {}, logging.INFO),
        (0, {"AMILI_LOG": "debug"}, logging.DEBUG),
        (0, {"AMILI_LOG": " Warning "}, logging.WARNING),
        (0, {"AMILI_LOG": ""}, logging.INFO),
        (1, {"AMILI_LOG": "warning"}, logging.DEBUG),  # the flag wins
    ],
)
def test_the_log_level_comes_from_the_flag_then_the_variable(
    verbose: int, env: dict[str, str], level: int
) -> None:
    assert log_level(Parser(prog="amili-async"), verbose, env) == level


def test_a_bad_amili_log_exits_2_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        log_level(Parser(prog="amili-async"), 0, {"AMILI_LOG": "loud"})
    assert exited.value.code == 2
    assert "AMILI_LOG: expected one of debug, info, warning, got 'loud'" in capsys.readouterr().err
