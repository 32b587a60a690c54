"""A local Apache Kafka (KRaft): one broker, or a quorum of three, resolved from Maven Central.

No Docker engine and no tarball downloads: ``mvn dependency:copy-dependencies``
puts the broker's jars (``org.apache.kafka:kafka_2.13`` and its runtime tree)
into a cache directory, and the broker runs on the machine's Java 17 as
``kafka.Kafka``. Storage is formatted once per state directory.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from errstream.local.jvm import JIT_OPTIONS, ClassArchive, class_path
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
      # one line per rebalance with its reason (a member joined, left, timed out): what an operator
      # reads when a group keeps rebalancing
      - name: org.apache.kafka.coordinator.group.GroupMetadataManager
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
class KafkaNode:
    """One combined broker/controller process of a local KRaft quorum."""

    node_id: int
    host: str
    port: int
    controller_port: int
    state_dir: Path  # its config, log and pid file
    name: str  # of its pid and log files
    data_dir: Path

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state_dir)

    @property
    def config_file(self) -> Path:
        return self.state_dir / f"{self.name}-server.properties"

    def ready(self) -> bool:
        return port_open(self.host, self.port)


@dataclass
class LocalKafka:
    """One broker (the default) or a quorum of ``brokers`` combined broker/controller nodes on loopback.

    Node i listens on ``port + 2(i-1)`` and its controller on the port above, so one broker keeps
    9092/9093 and three use 9092-9097. A cluster keeps its state apart from the single broker's
    (``<state>/kafka-cluster-<n>``): a KRaft log formatted for one voter cannot join three.
    """

    state_dir: Path
    cache_dir: Path
    version: str = "4.1.1"
    port: int = 9092
    host: str = "127.0.0.1"
    partitions: int = 4
    heap: str = "512m"
    brokers: int = 1
    # server.properties lines appended to every node's (later lines win), e.g. a test's broker.session.timeout.ms
    extra_config: tuple[str, ...] = ()

    @property
    def nodes(self) -> list[KafkaNode]:
        if self.brokers == 1:
            return [KafkaNode(1, self.host, self.port, self.port + 1, self.state_dir, "kafka",
                              self.state_dir / "kafka-data")]
        home = self.state_dir / f"kafka-cluster-{self.brokers}"
        return [
            KafkaNode(i, self.host, self.port + 2 * (i - 1), self.port + 2 * (i - 1) + 1, home, f"kafka-{i}",
                      home / f"data-{i}")
            for i in range(1, self.brokers + 1)
        ]

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    @property
    def process(self) -> ManagedProcess:
        """The first node's process (the only one of a single broker)."""
        return self.nodes[0].process

    @property
    def data_dir(self) -> Path:
        return self.nodes[0].data_dir

    def _write_config(self, node: KafkaNode) -> Path:
        replicas = min(3, self.brokers)
        voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.nodes)
        node.state_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{node.host}:{node.port},CONTROLLER://{node.host}:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://{node.host}:{node.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={node.data_dir.resolve()}",
            f"num.partitions={self.partitions}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={max(1, replicas - 1)}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=24",
        ]
        if self.brokers > 1:
            # topics created without an explicit factor (faust's, auto-created ones) are replicated too
            lines += [f"default.replication.factor={replicas}", f"min.insync.replicas={max(1, replicas - 1)}",
                      f"share.coordinator.state.topic.min.isr={max(1, replicas - 1)}"]
        lines += self.extra_config
        cfg = node.config_file
        cfg.write_text("\n".join([*lines, ""]))
        (node.state_dir / "kafka-log4j2.yaml").write_text(_LOG4J2)
        return cfg

    def _java(self, lib: Path, node: KafkaNode, *args: str, write_archive: bool = False) -> list[str]:
        """The JVM command (``errstream.local.jvm`` says why these options). Only a broker writes the class
        archive: a short tool run would archive just the few classes it loads."""
        cp = class_path(lib)
        archive = ClassArchive(lib, cp)
        pending = self._archive_pending(node)
        if write_archive:
            sharing = archive.options(pending)
        else:
            sharing = [f"-XX:SharedArchiveFile={archive.path}"] if archive.path.exists() else []
        return [
            "java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", *JIT_OPTIONS, *sharing,
            f"-Dlog4j2.configurationFile={(node.state_dir / 'kafka-log4j2.yaml').resolve()}",
            "-cp", cp, *args,
        ]

    @staticmethod
    def _archive_pending(node: KafkaNode) -> Path:
        return node.state_dir / f"{node.name}-class-archive.pending"

    def _adopt_archive(self, node: KafkaNode) -> None:
        if not self._archive_pending(node).exists():
            return
        lib = resolve_kafka_jars(self.version, self.cache_dir)
        ClassArchive(lib, class_path(lib)).adopt(self._archive_pending(node))

    def up(self, timeout: float = 90.0) -> str:
        """Start every node that is not running (formatting storage once) and wait until all listen."""
        nodes = [n for n in self.nodes if not (n.process.pid() is not None and n.ready())]
        for n in nodes:
            if n.ready():
                raise KafkaSetupError(f"port {n.port} is taken by a process errstream did not start")
        if not nodes:
            return self.bootstrap
        lib = resolve_kafka_jars(self.version, self.cache_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cluster_id: str | None = None
        for n in self.nodes:
            cfg = self._write_config(n)
            if not (n.data_dir / "meta.properties").exists():
                cluster_id = cluster_id or self._cluster_id()
                fmt = subprocess.run(
                    self._java(lib, n, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                               "--config", str(cfg)),
                    capture_output=True, text=True,
                )
                if fmt.returncode != 0:
                    raise KafkaSetupError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        for n in nodes:
            self.start_node(n.node_id, wait=False)
        # a quorum needs a majority of its voters before any of them serves: start all, then wait
        for n in nodes:
            n.process.wait_ready(n.ready, timeout, f"Kafka broker {n.node_id}")
        return self.bootstrap

    def _cluster_id(self) -> str:
        """The id the other nodes were formatted with, or a new one for a new cluster."""
        for n in self.nodes:
            meta = n.data_dir / "meta.properties"
            if meta.exists():
                m = re.search(r"^cluster\.id=(.+)$", meta.read_text(), re.MULTILINE)
                if m:
                    return m.group(1).strip()
        return new_cluster_id()

    def start_node(self, node_id: int, wait: bool = True, timeout: float = 90.0) -> None:
        """(Re)start one formatted node, e.g. after ``kill_node`` or during a rolling restart."""
        n = self.node(node_id)
        lib = resolve_kafka_jars(self.version, self.cache_dir)
        n.process.start(self._java(lib, n, "kafka.Kafka", str(n.config_file), write_archive=True))
        if wait:
            n.process.wait_ready(n.ready, timeout, f"Kafka broker {n.node_id}")

    def stop_node(self, node_id: int, timeout: float = 60.0) -> bool:
        """Controlled shutdown (SIGTERM): the broker hands its partition leadership over first."""
        node = self.node(node_id)
        stopped = node.process.stop(timeout=timeout)
        self._adopt_archive(node)
        return stopped

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, what a lost machine looks like."""
        process = self.node(node_id).process
        pid = process.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            while process.pid() is not None:
                time.sleep(0.05)

    def down(self) -> bool:
        stopped = [n.process.stop(timeout=30.0) for n in self.nodes]
        for n in self.nodes:
            self._adopt_archive(n)
        return any(stopped)

    def status(self) -> str | None:
        states = []
        for n in self.nodes:
            pid = n.process.pid()
            if pid is not None:
                states.append(f"pid {pid}, {n.host}:{n.port} ({'ready' if n.ready() else 'starting'})")
        if not states:
            return None
        return "; ".join(states) if self.brokers > 1 else states[0]
