"""Bytes each topic holds on the brokers' disks, from Kafka's DescribeLogDirs API (works on any broker).

aiokafka's admin client has no ``describe_log_dirs``; the request and response of version 1 (Kafka 1.0
and later, still served by Kafka 4) are declared here with aiokafka's own protocol types.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Int64, Schema, String

from errstream_core.settings import Settings


class _DescribeLogDirsResponseV1(Response):
    API_KEY = 35
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", Array(
            ("error_code", Int16), ("log_dir", String("utf-8")),
            ("topics", Array(
                ("name", String("utf-8")),
                ("partitions", Array(("partition_index", Int32), ("partition_size", Int64), ("offset_lag", Int64),
                                     ("is_future_key", Boolean))),
            )),
        )),
    )


class _DescribeLogDirsRequestV1(RequestStruct):
    API_KEY = 35
    API_VERSION = 1
    RESPONSE_TYPE = _DescribeLogDirsResponseV1
    SCHEMA = Schema(("topics", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))))


class _DescribeLogDirs(Request[_DescribeLogDirsRequestV1]):
    API_KEY = 35

    def build(self, request_struct_class: type[_DescribeLogDirsRequestV1]) -> _DescribeLogDirsRequestV1:
        return request_struct_class(None)  # None: every topic


def topic_bytes(settings: Settings, prefix: str = "") -> dict[str, int]:
    """Bytes on disk per topic whose name starts with ``prefix``, summed over partitions, replicas and brokers."""

    async def go() -> dict[str, int]:
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            client: Any = admin._client  # noqa: SLF001 - aiokafka has no public way to send another request
            client.cluster.update_metadata(await admin._get_cluster_metadata())  # noqa: SLF001
            sizes: dict[str, int] = {}
            for broker in client.cluster.brokers():
                response = await client.send(broker.nodeId, _DescribeLogDirs())
                for _error, _dir, topics in response.results:
                    for name, partitions in topics:
                        if name.startswith(prefix):
                            sizes[name] = sizes.get(name, 0) + sum(p[1] for p in partitions)
            return sizes
        finally:
            await admin.close()

    return asyncio.run(go())
