"""The local broker's JVM: the first broker of a jar cache leaves a class archive, the next ones map it.

Start-up CPU is what the suite, the demo and the benchmarks pay for every broker they start; the archive
roughly halves it (`docs/performance.md`, "Local broker start-up").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from errstream.local.kafka import LocalKafka, resolve_kafka_jars
from errstream.local.process import free_port_pair
from errstream_core.settings import Settings

pytestmark = pytest.mark.e2e


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _mapped(pid: int, path: Path) -> bool:
    return str(path) in Path(f"/proc/{pid}/maps").read_text()


def test_first_broker_writes_the_class_archive_and_the_next_one_maps_it(tmp_path: Path) -> None:
    if not Path("/proc/self/maps").exists():
        pytest.skip("reads /proc to see what the JVM mapped")
    s = Settings()
    jars = resolve_kafka_jars(s.kafka_version, s.cache_dir)
    cache = tmp_path / "cache"  # a jar cache of its own, without an archive yet
    (cache / f"kafka-{s.kafka_version}").mkdir(parents=True)
    (cache / f"kafka-{s.kafka_version}" / "libs").symlink_to(jars.resolve())
    archives = lambda: sorted((cache / f"kafka-{s.kafka_version}").glob("classes-*.jsa"))  # noqa: E731

    first = LocalKafka(state_dir=tmp_path / "a", cache_dir=cache, version=s.kafka_version, port=free_port_pair())
    first.up()
    pid = first.process.pid()
    assert pid is not None
    assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in _cmdline(pid))
    assert "-XX:TieredStopAtLevel=1" in _cmdline(pid)
    first.down()
    assert len(archives()) == 1, "a broker stopped with SIGTERM leaves the archive"
    assert not list((cache / f"kafka-{s.kafka_version}").glob("*.tmp"))

    second = LocalKafka(state_dir=tmp_path / "b", cache_dir=cache, version=s.kafka_version, port=free_port_pair())
    second.up()
    try:
        pid = second.process.pid()
        assert pid is not None
        assert f"-XX:SharedArchiveFile={archives()[0]}" in _cmdline(pid)
        assert _mapped(pid, archives()[0]), "the JVM accepted the archive and mapped it"
    finally:
        second.down()
    assert os.path.getsize(archives()[0]) > 1_000_000
