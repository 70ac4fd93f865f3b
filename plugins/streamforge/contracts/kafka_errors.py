"""One policy for Kafka client errors, used by the workers and the Airflow side alike.

An error is *fatal* when no retry can cure it: librdkafka says so (`fatal()`), or it is one of
FATAL (a missing topic or partition, refused credentials or permissions, a request the client
built wrong). Everything else (a broker restarting, a coordinator moving, transport errors and
timeouts) is transient: librdkafka reconnects, callers retry within their own deadline.

Duck-typed on confluent-kafka's KafkaError (`name()`, `fatal()`), so the contracts package
stays free of a Kafka client import.
"""

from __future__ import annotations

from typing import Protocol

FATAL = frozenset(
    {
        "UNKNOWN_TOPIC_OR_PART",
        "TOPIC_AUTHORIZATION_FAILED",
        "GROUP_AUTHORIZATION_FAILED",
        "SASL_AUTHENTICATION_FAILED",
        "OFFSET_METADATA_TOO_LARGE",
        "_UNKNOWN_PARTITION",
        "_UNKNOWN_TOPIC",
        "_INVALID_ARG",
        "_AUTHENTICATION",
    }
)


class KafkaErrorLike(Protocol):
    def name(self) -> str: ...
    def fatal(self) -> bool: ...


def is_partition_eof(error: KafkaErrorLike) -> bool:
    """Not an error: the consumer reached the end of a partition (enable.partition.eof)."""
    return error.name() == "_PARTITION_EOF"


def is_fatal(error: KafkaErrorLike) -> bool:
    return error.fatal() or error.name() in FATAL
