"""Kafka side effects of a run: its data topic (create / delete) and the `stop` command.

All through the Kafka provider's hooks on the `streamforge_kafka` connection. Each is
idempotent, so a retried or re-run task converges: creating an existing topic (with the same
partition count) and deleting a missing one both succeed.
"""

from __future__ import annotations

import logging
import time

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from streamforge.contracts.messages import Command, CommandName
from streamforge.orchestration.plan import RunPlan

log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 30.0
# A data topic only lives for one run; if its teardown never ran, the broker still drops the
# data after this long.
DATA_RETENTION_MS = str(7 * 24 * 3600 * 1000)


class TopicError(RuntimeError):
    pass


def create_data_topic(kafka_config_id: str, plan: RunPlan) -> None:
    admin = KafkaAdminClientHook(kafka_config_id=kafka_config_id).get_conn
    topic = NewTopic(
        plan.data_topic,
        num_partitions=plan.partitions,
        replication_factor=-1 if plan.replication_factor is None else plan.replication_factor,
        config={"retention.ms": DATA_RETENTION_MS},
    )
    future = admin.create_topics([topic], operation_timeout=ADMIN_TIMEOUT, request_timeout=ADMIN_TIMEOUT)
    try:
        future[plan.data_topic].result()
        log.info(
            "created topic %s (%d partitions, replication %s)",
            plan.data_topic,
            plan.partitions,
            plan.replication_factor or "the broker's default",
        )
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise TopicError(f"cannot create topic {plan.data_topic}: {exc.args[0].str()}") from None
        log.info("topic %s already exists (a retry of this attempt)", plan.data_topic)
    _wait_for_leaders(admin, plan)


def _wait_for_leaders(admin: object, plan: RunPlan) -> None:
    """Return once every partition has a leader, so the loader's first write cannot miss it."""
    deadline = time.monotonic() + ADMIN_TIMEOUT
    while True:
        topics = admin.list_topics(topic=plan.data_topic, timeout=ADMIN_TIMEOUT).topics  # type: ignore[attr-defined]
        info = topics.get(plan.data_topic)
        if info is not None and info.error is None and info.partitions:
            if len(info.partitions) != plan.partitions:
                raise TopicError(
                    f"topic {plan.data_topic} exists with {len(info.partitions)} partitions, not {plan.partitions}"
                )
            if all(p.leader >= 0 for p in info.partitions.values()):
                return
        if time.monotonic() > deadline:
            raise TopicError(f"topic {plan.data_topic} has no leader after {ADMIN_TIMEOUT:.0f}s")
        time.sleep(0.1)


def delete_data_topic(kafka_config_id: str, plan: RunPlan) -> bool:
    """Delete the run's topic; False if it was already gone."""
    admin = KafkaAdminClientHook(kafka_config_id=kafka_config_id).get_conn
    future = admin.delete_topics([plan.data_topic], operation_timeout=ADMIN_TIMEOUT, request_timeout=ADMIN_TIMEOUT)
    try:
        future[plan.data_topic].result()
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.info("topic %s is already gone", plan.data_topic)
            return False
        raise TopicError(f"cannot delete topic {plan.data_topic}: {exc.args[0].str()}") from None
    log.info("deleted topic %s", plan.data_topic)
    return True


def send_stop_command(kafka_config_id: str, plan: RunPlan, reason: str) -> Command:
    """Publish `stop` for the run's queue on queue-control (key = queue_id) and wait for the ack."""
    command = Command(command=CommandName.STOP, queue_id=plan.queue_id, target=None, reason=reason)
    producer = KafkaProducerHook(kafka_config_id=kafka_config_id).get_producer()
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err.str())

    producer.produce(plan.control_topic, key=command.kafka_key(), value=command.to_bytes(), on_delivery=delivered)
    remaining = producer.flush(ADMIN_TIMEOUT)
    if remaining or failures:
        raise TopicError(
            f"stop for {plan.queue_id} not delivered to {plan.control_topic}: "
            f"{'; '.join(failures) or 'flush timed out'}"
        )
    log.info("sent stop to %s on %s: %s", plan.queue_id, plan.control_topic, reason)
    return command
