"""The command line with no server up: one clear line naming what is down, a non-zero exit, a bounded wait.

Kafka and ClickHouse are pointed at a loopback port nothing listens on (connection refused), as when
`errstream local up` was not run. The ClickHouse URL carries a password: it must never be printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from errstream.local.process import free_port

PASSWORD = "s3cret-pw-do-not-print"
SLACK = 30.0  # interpreter start and imports on a loaded 2-core machine


def run(*args: str, timeout: float = 2.0, debug: bool = False) -> tuple[subprocess.CompletedProcess[str], float]:
    port = free_port()  # bound and released: nothing listens there
    env = {**os.environ, "ERRSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
           "ERRSTREAM_CLICKHOUSE_URL": f"http://admin:{PASSWORD}@127.0.0.1:{port}",
           "ERRSTREAM_METRICS_PORT": "0", "COLUMNS": "200"}
    env.pop("ERRSTREAM_DEBUG", None)
    options = ["--debug"] if debug else []
    if timeout:
        options += ["--timeout", str(timeout)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "errstream.cli", *options, *args], env=env, capture_output=True,
                          text=True, timeout=timeout + SLACK + 60, check=False)
    return done, time.monotonic() - started


KAFKA_COMMANDS = [
    ["send", "--synthetic", "1"],
    ["issue", "resolve", "0123456789abcdef0123456789abcdef"],
    ["alerts", "tail"],
]
CLICKHOUSE_COMMANDS = [
    ["migrate"],
    ["issue", "list"],
    ["issue", "status", "0123456789abcdef0123456789abcdef"],
    ["issue", "ack", "0123456789ab"],  # a prefix is resolved against ClickHouse first
    ["report"],
    ["sink"],  # ClickHouse is the first server the services reach
    ["notify"],
]


@pytest.mark.parametrize("args", KAFKA_COMMANDS + CLICKHOUSE_COMMANDS, ids=" ".join)
def test_one_line_naming_what_is_down_and_how_to_start_it(args: list[str]) -> None:
    done, elapsed = run(*args, timeout=2.0)
    output = (done.stdout + done.stderr).strip()
    lines = output.splitlines()
    assert done.returncode != 0, output
    assert 1 <= len(lines) <= 3, output
    assert "Traceback" not in output
    assert "errstream local up" in output
    if args in (["sink"], ["notify"]):  # services reach both at start: whichever gives up first is named
        assert ("Kafka at 127.0.0.1:" in output or "ClickHouse at http://127.0.0.1:" in output), output
    else:
        server = "Kafka at 127.0.0.1:" if args in KAFKA_COMMANDS else "ClickHouse at http://127.0.0.1:"
        assert server in output, output
    assert "unreachable" in output, output
    assert PASSWORD not in output and "admin" not in output
    assert "migrate` run" not in output and "run `errstream migrate`" not in output  # not a schema problem
    assert elapsed < 2.0 + SLACK, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("args", [["issue", "resolve", "0123456789abcdef0123456789abcdef"], ["alerts", "tail"]],
                         ids=" ".join)
def test_commands_that_retried_forever_give_up_after_the_default_timeout(args: list[str]) -> None:
    done, elapsed = run(*args, timeout=0)  # no --timeout: the default 10 s
    assert done.returncode == 1
    assert "Kafka at 127.0.0.1:" in done.stderr and "within 10 s" in done.stderr
    assert 9.0 < elapsed < 10.0 + SLACK, f"took {elapsed:.1f} s"


def test_debug_shows_the_traceback() -> None:
    done, _ = run("migrate", debug=True)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "OperationalError" in done.stderr


def test_a_malformed_fingerprint_is_refused_before_any_server_is_asked() -> None:
    done, _ = run("issue", "status", "not-hex")
    assert done.returncode == 2
    assert "not a fingerprint" in done.stderr and "8 or more" in done.stderr
    assert "unreachable" not in done.stderr


def test_the_error_layer_keeps_exit_codes_and_explains_the_rest() -> None:
    """typer's own exits pass through with their code; any other failure is one line, no traceback."""
    import typer
    from typer.testing import CliRunner

    from errstream.cli_errors import ErrorReportingGroup

    app = typer.Typer(cls=ErrorReportingGroup)

    @app.command()
    def quits(code: int) -> None:
        raise typer.Exit(code)

    @app.command()
    def fails() -> None:
        raise RuntimeError("the disk\nis full")

    runner = CliRunner()
    assert runner.invoke(app, ["quits", "0"]).exit_code == 0
    assert runner.invoke(app, ["quits", "3"]).exit_code == 3
    failed = runner.invoke(app, ["fails"])
    assert failed.exit_code == 1
    assert failed.output.strip() == "error: RuntimeError: the disk is full (run with --debug for the traceback)"


def test_plain_connection_errors_are_one_line_too() -> None:
    import httpx

    from errstream.cli_errors import explain

    refused = ConnectionRefusedError(111, "Connection refused")
    assert explain(refused) == "cannot connect (connection refused): [Errno 111] Connection refused"
    wrapped = RuntimeError("delivery failed")
    wrapped.__cause__ = httpx.ConnectError("[Errno -2] Name or service not known")
    assert explain(wrapped) == "cannot connect (host not found): [Errno -2] Name or service not known"


@pytest.mark.parametrize("args", [["issue", "resolve", "0123456789abcdef0123456789abcdef"], ["alerts", "tail"],
                                  ["send", "--synthetic", "1"]], ids=" ".join)
def test_timeout_after_the_command_works_too(args: list[str]) -> None:
    done, elapsed = run(*args, "--timeout", "2", timeout=0)
    assert done.returncode == 1
    assert "Kafka at 127.0.0.1:" in done.stderr and "within 2 s" in done.stderr
    assert elapsed < 2.0 + SLACK, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(("command", "text"), [
    (["alerts", "rules", "apply"], '[[rules]]\nname = "any-new"\nwhen = "new_issue"\n'),
    (["rules", "apply"], "error.type:ConnectionError -> database-unavailable\n"),
], ids=["alerts rules apply", "rules apply"])
def test_applying_rules_with_the_broker_down_honours_the_timeout(command: list[str], text: str,
                                                                tmp_path: Path) -> None:
    """Before: both waited 60 s in silence whatever --timeout said."""
    rules = tmp_path / "rules.txt"
    rules.write_text(text)
    done, elapsed = run(*command, str(rules), "--timeout", "2", timeout=0)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Kafka at 127.0.0.1:" in done.stderr and "Traceback" not in done.stderr
    assert elapsed < 2.0 + SLACK, f"took {elapsed:.1f} s"
