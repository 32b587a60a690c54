"""A single-node Apache Kafka (KRaft) broker resolved from Maven Central.

No Docker engine and no tarball downloads: ``mvn dependency:copy-dependencies``
puts the broker's jars (``org.apache.kafka:kafka_2.13`` and its runtime tree)
into a cache directory, and the broker runs on the machine's Java 17 as
``kafka.Kafka``. Storage is formatted once per state directory.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from errstream.local.process import ManagedProcess, port_open

# log4j2's slf4j binding is not part of kafka_2.13's runtime tree; without it the
# broker is silent, which makes start-up failures impossible to diagnose.
_EXTRA_ARTIFACTS = [("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")]

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>errstream.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


class KafkaSetupError(RuntimeError):
    pass


def _java_major() -> int:
    java = shutil.which("java")
    if not java:
        raise KafkaSetupError("Java 17+ is required to run the local Kafka broker: `java` is not on PATH")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise KafkaSetupError(f"cannot read the Java version from: {out.strip()[:200]}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def resolve_kafka_jars(version: str, cache_dir: Path) -> Path:
    """Resolve the broker's runtime jars with Maven once; return the lib directory."""
    lib = cache_dir / f"kafka-{version}" / "libs"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    if not shutil.which("mvn"):
        raise KafkaSetupError("Maven (`mvn`) is required to resolve Kafka's jars from Maven Central")
    if _java_major() < 17:
        raise KafkaSetupError("Kafka 4.x needs Java 17 or newer")
    work = lib.parent
    work.mkdir(parents=True, exist_ok=True)
    artifacts = [("org.apache.kafka", "kafka_2.13", version), *_EXTRA_ARTIFACTS]
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in artifacts
    )
    (work / "pom.xml").write_text(_POM.format(version=version, deps=deps))
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise KafkaSetupError(f"mvn could not resolve Kafka {version}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    marker.touch()
    return lib


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of a random UUID that does not start with '-'.

    Kafka's own ``Uuid.randomUuid`` skips such ids; a leading '-' would also be
    read as an option by the storage tool's argument parser.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass
class LocalKafka:
    state_dir: Path
    cache_dir: Path
    version: str = "4.1.1"
    port: int = 9092
    host: str = "127.0.0.1"
    partitions: int = 4
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("kafka", self.state_dir)

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "kafka-data"

    def _write_config(self) -> Path:
        cfg = self.state_dir / "kafka-server.properties"
        controller_port = self.port + 1
        cfg.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir.resolve()}",
                    f"num.partitions={self.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=24",
                    "",
                ]
            )
        )
        (self.state_dir / "kafka-log4j2.yaml").write_text(_LOG4J2)
        return cfg

    def _java(self, lib: Path, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={(self.state_dir / 'kafka-log4j2.yaml').resolve()}",
            "-cp", f"{lib.resolve()}/*", *args,
        ]

    def up(self, timeout: float = 90.0) -> str:
        if self.process.pid() is not None and port_open(self.host, self.port):
            return self.bootstrap
        if port_open(self.host, self.port):
            raise KafkaSetupError(f"port {self.port} is taken by a process errstream did not start")
        lib = resolve_kafka_jars(self.version, self.cache_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = new_cluster_id()
            fmt = subprocess.run(
                self._java(lib, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(cfg)),
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise KafkaSetupError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        self.process.start(self._java(lib, "kafka.Kafka", str(cfg)))
        self.process.wait_ready(lambda: port_open(self.host, self.port), timeout, "Kafka broker")
        return self.bootstrap

    def down(self) -> bool:
        return self.process.stop(timeout=30.0)

    def status(self) -> str | None:
        pid = self.process.pid()
        if pid is None:
            return None
        state = "ready" if port_open(self.host, self.port) else "starting"
        return f"pid {pid}, {self.bootstrap} ({state})"
