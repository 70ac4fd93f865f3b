"""debug-producer: send `ping` or `stop` to queue-control; optionally wait for the pong.

    debug-producer --queue-id wf-… --command ping --expect-pong [--timeout 10] [--repeat 3]
    debug-producer --queue-id wf-… --command stop [--target loader] [--reason "…"]

Kafka settings come from the same environment as the workers (KAFKA_BOOTSTRAP_SERVERS,
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_USER, KAFKA_PASSWORD, KAFKA_CA_PATH,
QUEUE_CONTROL_TOPIC, QUEUE_EVENTS_TOPIC).

With --expect-pong the events consumer is assigned to the END of queue-events BEFORE the ping
is sent, so a fast pong cannot be missed; each ping is matched to its pong by `sent_at`
(echoed as extra.ping_sent_at). The round-trip time is measured on this machine's clock.

Exit codes: 0 sent (and every pong received), 1 delivery failure or no pong within --timeout,
2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamforge.contracts.config import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, KafkaEnv, load_settings
from streamforge.contracts.kafka_logging import kafka_client_logger
from streamforge.contracts.messages import Command, CommandName, MessageError, Status, parse_event
from streamforge.contracts.names import Component
from streamforge_workers.runtime.worker import env_help

METADATA_TIMEOUT = 10.0
TARGETS = [c.value for c in Component if c is not Component.DEBUG_PRODUCER]

log = logging.getLogger("streamforge.debug_producer")


class CliError(Exception):
    """A failure to report on stderr with exit code 1."""


class ClientConfigError(Exception):
    """librdkafka refused the client settings (exit 2)."""


def _client(cls: type[Producer] | type[Consumer], config: dict[str, object]) -> Any:
    try:
        return cls(config)
    except KafkaException as exc:
        raise ClientConfigError(str(exc)) from exc


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streamforge_workers.debug_producer",
        description="Send a ping or stop command to queue-control; with --expect-pong, wait for the pong.",
        epilog=env_help(KafkaEnv)
        + "\n\nexit codes: 0 sent (and answered), 1 not delivered / no pong, 2 bad arguments or config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--queue-id", required=True, help="queue_id written into the command")
    p.add_argument("--command", required=True, choices=[c.value for c in CommandName], help="command to send")
    p.add_argument("--target", choices=TARGETS, help="only this component obeys (default: every component)")
    p.add_argument("--reason", help="free text carried by the command (shown in the interrupted event)")
    p.add_argument("--expect-pong", action="store_true", help="ping only: wait for the pong and print the RTT")
    p.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for each pong (default 10)")
    p.add_argument("--repeat", type=_count, default=1, help="send the command N times (default 1)")
    p.add_argument("--interval", type=_non_negative, default=1.0, help="seconds between repeats (default 1.0)")
    return p


def _client_logger() -> logging.Logger:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    return kafka_client_logger()


class PongWaiter:
    """A consumer on queue-events assigned at the current end of every partition."""

    def __init__(self, settings: KafkaEnv, queue_id: str, target: str | None) -> None:
        self.queue_id = queue_id
        self.target = target
        self.topic = settings.queue_events_topic
        self.consumer = _client(
            Consumer,
            settings.kafka_config()
            | {
                "group.id": f"streamforge-debug-producer-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest",
                "logger": _client_logger(),
            },
        )
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT)
        except KafkaException as exc:
            raise CliError(f"cannot read metadata of {self.topic!r}: {exc}") from exc
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            reason = info.error if info is not None and info.error is not None else "no partitions"
            raise CliError(f"topic {self.topic!r} is not available: {reason}")
        assignment = []
        for p in sorted(info.partitions):
            _low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=METADATA_TIMEOUT)
            assignment.append(TopicPartition(self.topic, p, high))
        # Concrete offsets: every event produced from now on is read, however fast it comes.
        self.consumer.assign(assignment)

    def wait(self, ping_sent_at: float, deadline: float) -> tuple[str, float] | None:
        """(producer, local receive time) of the pong answering the ping sent at `ping_sent_at`."""
        while (left := deadline - time.monotonic()) > 0:
            msg = self.consumer.poll(min(left, 0.5))
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("queue-events: %s", msg.error())
                continue
            received = time.monotonic()
            try:
                event = parse_event(msg.value() or b"")
            except MessageError:
                continue
            if (
                event.status is Status.PONG
                and event.queue_id == self.queue_id
                and (self.target is None or event.component == self.target)
                and event.extra.get("ping_sent_at") == ping_sent_at
            ):
                return event.producer, received
        return None

    def close(self) -> None:
        self.consumer.close()


def _send(producer: Producer, topic: str, cmd: Command, timeout: float) -> Message:
    delivered: list[tuple[KafkaError | None, Message]] = []
    producer.produce(
        topic, key=cmd.kafka_key(), value=cmd.to_bytes(), on_delivery=lambda e, m: delivered.append((e, m))
    )
    producer.flush(timeout)
    if not delivered:
        raise CliError(f"{cmd.command.value} not delivered to {topic!r} within {timeout:g} s")
    err, msg = delivered[0]
    if err is not None:
        raise CliError(f"{cmd.command.value} not delivered to {topic!r}: {err}")
    return msg


def execute(args: argparse.Namespace, settings: KafkaEnv) -> int:
    delivery_timeout = max(args.timeout, 5.0)
    producer = _client(
        Producer,
        settings.kafka_config()
        | {
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(delivery_timeout * 1000),
            "logger": _client_logger(),
        },
    )
    waiter = PongWaiter(settings, args.queue_id, args.target) if args.expect_pong else None
    try:
        for i in range(args.repeat):
            if i:
                time.sleep(args.interval)
            cmd = Command(
                queue_id=args.queue_id,
                command=CommandName(args.command),
                target=args.target,
                reason=args.reason,
                sent_at=time.time(),
            )
            sent = time.monotonic()
            msg = _send(producer, settings.queue_control_topic, cmd, delivery_timeout)
            print(
                f"sent {cmd.command.value} to {args.queue_id}"
                + (f" (target {args.target})" if args.target else "")
                + f" [{msg.topic()}:{msg.partition()}@{msg.offset()}]",
                flush=True,
            )
            if waiter is None:
                continue
            answer = waiter.wait(cmd.sent_at, sent + args.timeout)
            if answer is None:
                print(f"no pong from {args.queue_id} within {args.timeout:g} s", file=sys.stderr, flush=True)
                return EXIT_ERROR
            producer_id, received = answer
            print(f"pong from {producer_id} in {(received - sent) * 1000:.1f} ms", flush=True)
        return EXIT_OK
    finally:
        if waiter is not None:
            waiter.close()


def run_cli(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.expect_pong and args.command != CommandName.PING.value:
        p.error("--expect-pong only applies to --command ping")
    if not args.queue_id.strip():
        p.error("--queue-id must not be empty")
    settings = load_settings(KafkaEnv)
    try:
        return execute(args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except ClientConfigError as exc:
        print(f"configuration error: Kafka client settings: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    except KafkaException as exc:
        print(f"error: Kafka: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run_cli(argv))
