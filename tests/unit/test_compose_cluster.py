"""docker-compose.cluster.yml: three brokers, 2 shards x 2 replicas with Keeper, wired to cluster mode.

Docker does not run here; this checks what a typo would break: the quorum, the replication settings,
the ClickHouse cluster definition against the services that exist, and that secrets stay outside.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.cluster.yml"


def _doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_three_kafka_brokers_form_one_quorum_with_replicated_topics() -> None:
    services = _doc()["services"]
    brokers = {name: svc for name, svc in services.items() if name.startswith("kafka-")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    for i, (name, svc) in enumerate(sorted(brokers.items()), start=1):
        env = svc["environment"]
        assert env["KAFKA_NODE_ID"] == i and env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and svc["image"].startswith("apache/kafka:4.")
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3 and env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
    assert len({tuple(s["volumes"]) for s in brokers.values()}) == 3, "each broker needs its own volume"


def test_clickhouse_is_two_shards_of_two_replicas_on_keeper() -> None:
    doc = _doc()
    services = doc["services"]
    nodes = {name: svc for name, svc in services.items() if name.startswith("ch-")}
    assert len(nodes) == 4
    assert Counter(svc["environment"]["CH_SHARD"] for svc in nodes.values()) == {"01": 2, "02": 2}
    assert {svc["environment"]["CH_REPLICA"] for svc in nodes.values()} == set(nodes)
    config = ET.fromstring(doc["configs"]["clickhouse-cluster"]["content"])
    cluster_name = doc["x-errstream-env"]["ERRSTREAM_CLICKHOUSE_CLUSTER"]
    cluster = config.find(f"remote_servers/{cluster_name}")
    assert cluster is not None, f"remote_servers has no cluster {cluster_name!r}"
    shards = [[r.findtext("host") for r in shard.findall("replica")] for shard in cluster.findall("shard")]
    assert len(shards) == 2 and all(len(s) == 2 for s in shards)
    for shard in shards:  # the replicas of a shard are the services carrying that shard's macro
        assert len({nodes[h]["environment"]["CH_SHARD"] for h in shard}) == 1
    assert all(s.findtext("internal_replication") == "true" for s in cluster.findall("shard"))
    assert config.find("macros/shard").get("from_env") == "CH_SHARD"  # type: ignore[union-attr]
    assert config.find("macros/replica").get("from_env") == "CH_REPLICA"  # type: ignore[union-attr]
    keeper_host = config.findtext("zookeeper/node/host")
    assert keeper_host in services and services[keeper_host]["image"].startswith("clickhouse/clickhouse-keeper:")
    keeper = ET.fromstring(doc["configs"]["keeper"]["content"])
    assert keeper.findtext("keeper_server/tcp_port") == config.findtext("zookeeper/node/port")
    for svc in nodes.values():
        assert svc["configs"][0]["source"] == "clickhouse-cluster"


def test_errstream_roles_use_the_cluster_and_keep_secrets_out() -> None:
    doc = _doc()
    services = doc["services"]
    for role in ("migrate", "worker", "sink", "notify"):
        env = services[role]["environment"]
        assert services[role]["command"] == [role]
        assert env["ERRSTREAM_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert env["ERRSTREAM_CLICKHOUSE_CLUSTER"] == "errstream"
        assert env["ERRSTREAM_TOPIC_REPLICATION_FACTOR"] == "3" and env["ERRSTREAM_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
        assert env["ERRSTREAM_CLICKHOUSE_URL"].removeprefix("http://").split(":")[0] in services
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{key} must come from the environment"
