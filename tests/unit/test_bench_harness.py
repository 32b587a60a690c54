"""The pure parts of the benchmark harness, the role spawner's environment and the bench CLI's guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from bench import harness
from errstream.local.roles import RoleProcess, settings_env
from errstream_core.settings import Settings
from producers.synthetic import realistic_events
from schemas.events import ErrorEvent
from schemas.notifications import WebhookDestination


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert harness.percentiles(values) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert harness.percentiles([7.0], (0.5, 0.999)) == {"p50": 7.0, "p999": 7.0, "max": 7.0}
    empty = harness.percentiles([])
    assert all(v != v for v in empty.values())  # NaN: no values, no figure


def test_fresh_settings_give_each_run_its_own_topics_groups_and_database() -> None:
    base = Settings(topic_chains="shared-chains")
    a, b = (harness.fresh_settings(base, harness.new_run("t"), database=True) for _ in range(2))
    names = ("topic_errors", "topic_dlq", "topic_alerts", "topic_processed", "topic_issue_status", "app_id",
             "sink_group", "clickhouse_database", "chains_topic")
    for name in names:
        assert getattr(a, name) != getattr(base, name)
        assert getattr(a, name) != getattr(b, name)
    assert harness.fresh_settings(base, "r1").clickhouse_database == base.clickhouse_database
    assert harness.fresh_settings(base, "r1", detection_enabled=False).detection_enabled is False


def test_emit_prints_and_appends_one_record_per_run(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    printed: list[str] = []
    harness.emit(settings, "demo", {"n": 1}, {"rate": 10.0, "nan": float("nan")}, ["rate 10/s"], out=printed.append)
    harness.emit(settings, "demo", {"n": 2}, {"rate": 12.0}, ["rate 12/s"], as_json=True, out=printed.append)
    assert printed[0] == "rate 10/s" and printed[1].startswith("recorded in ")
    assert json.loads(printed[2])["figures"] == {"rate": 12.0}
    records = [json.loads(line) for line in (tmp_path / "home" / "bench" / "results.jsonl").read_text().splitlines()]
    assert [r["params"]["n"] for r in records] == [1, 2]
    assert records[0]["figures"] == {"rate": 10.0, "nan": None}
    assert {"at", "host", "cpus", "commit", "load_average"} <= set(records[0])


def test_payloads_are_unique_current_valid_events() -> None:
    payloads = harness.Payloads(templates=5)
    batch = payloads.batch(12)  # more than the templates: ids must still differ
    events = [ErrorEvent.model_validate_json(raw) for raw in batch]
    assert len({e.event_id for e in events}) == 12
    assert all(e.timestamp.year >= 2026 for e in events)
    assert 900 < payloads.mean_bytes < 2_000  # ~1.2 kB, like the measurements


def test_realistic_events_are_deterministic_with_deep_stacks() -> None:
    a, b = realistic_events(6, seed=3), realistic_events(6, seed=3)
    assert a == b and a != realistic_events(6, seed=4)
    event = ErrorEvent.model_validate_json(a[0])
    assert len(event.exceptions[-1].stacktrace) >= 20 and event.request and event.breadcrumbs


def test_settings_env_passes_explicit_settings_and_secrets_to_children(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = WebhookDestination.model_validate({"name": "x", "url": "https://hooks.example/x"})
    s = Settings(topic_errors="mine.errors", detection_enabled=False, clickhouse_password=SecretStr("pw"),
                 sample_rates={"info": 1.0}, alert_webhooks=[hook])
    env = settings_env(s)
    assert env["ERRSTREAM_TOPIC_ERRORS"] == "mine.errors"
    assert env["ERRSTREAM_DETECTION_ENABLED"] == "false"
    assert env["ERRSTREAM_CLICKHOUSE_PASSWORD"] == "pw"
    assert orjson.loads(env["ERRSTREAM_SAMPLE_RATES"]) == {"info": 1.0}
    assert orjson.loads(env["ERRSTREAM_ALERT_WEBHOOKS"])[0]["url"] == "https://hooks.example/x"
    assert "ERRSTREAM_SPIKE_FACTOR" not in env  # defaults stay defaults
    # what the child reads back is what the parent had
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert (child.detection_enabled, child.sample_rates, child.alert_webhooks) == (
        False, {"info": 1.0}, s.alert_webhooks)


def test_bench_without_the_checkout_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    code = ("import sys; sys.path = [p for p in sys.path if p not in ('', '.')]\n"
            "import errstream.bench_cli as b; b._checkout_root = lambda: None\n"
            "from errstream.cli import app; app(['bench', 'core', '--events', '10'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "errstream bench: the benchmarks are not installed (they ship with the source checkout, not the package); "
        "run it from a checkout of errstream"]
    assert list(tmp_path.iterdir()) == []


def test_role_process_runs_the_role_with_its_arguments_and_logs_to_its_file(tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap="127.0.0.1:1")
    proc = RoleProcess("schema", s, tmp_path / "logs", args=["export", str(tmp_path / "out")]).start()
    assert proc.proc is not None and proc.proc.wait(60) == 0
    assert proc.stop() == 0 and not proc.running()
    assert proc.log.parent == tmp_path / "logs" and "error_event" in proc.output()  # it prints the files written
    assert any((tmp_path / "out").iterdir())


def test_e2e_figures_and_lines() -> None:
    from bench.e2e import E2EResult

    r = E2EResult(events=10_000, rate=5_000, seconds=10, workers=2, event_bytes=1_230, raw_publish_per_s=40_000,
                  drain_s=2.0, worker_cpu_us_per_event=80.0, sink_cpu_us_per_event=30.0, steady_sent=50_000,
                  steady_s=10.0, probes=100, latencies=[i / 100 for i in range(1, 101)], all_counted=True,
                  counted=60_100, expected=60_100, rss_mb={"worker0": 100.0, "worker1": 110.0, "sink": 150.0,
                                                           "broker": None, "clickhouse": 400.0})
    f = r.figures()
    assert (f["drain_events_per_s"], f["drain_to_raw_ratio"], f["steady_events_per_s"]) == (5_000, 0.125, 5_000)
    assert f["latency_ms"] == {"p50": 500, "p90": 900, "p99": 990, "max": 1000}
    assert f["peak_rss_total_mb"] == 760.0  # of the processes whose memory is known
    text = "\n".join(r.lines())
    assert "5,000 events/s until all counted" in text and "drain/raw = 0.12" in text
    assert "p50 500 ms  p90 900 ms  p99 990 ms" in text and "broker ?" in text and "NOT all counted" not in text


def test_free_port_pair_gives_two_bindable_consecutive_ports() -> None:
    import socket

    from errstream.local.process import free_port_pair

    port = free_port_pair()
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", port))
        b.bind(("127.0.0.1", port + 1))
