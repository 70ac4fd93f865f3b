"""`streamforge topics gc`: find (and with --yes delete) per-run data topics nobody will read.

Each run attempt gets its own data topic (`{queue_id}-data`, docs/ARCHITECTURE.md §2) that
`delete_topic` removes at the end of the run. One is left behind when that teardown never ran
(the metadata DB was reset, a run was deleted, Airflow died). A data topic is *leaked* when

* no run knows it: no run of its DAG has a `plan` attempt whose h6 is the topic's, or
* its run has ended (success/failed), or a later attempt of its run has replaced it,

and its last activity (newest record, or the end of its run) is older than `--older-than`
hours. Topics of attempts still running are never touched. Airflow is asked over its REST API,
Kafka through an AdminClient.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from streamforge.orchestration.task_ids import PLAN

app = typer.Typer(help="Kafka topics of the pipelines.", no_args_is_help=True)

DATA_TOPIC = re.compile(r"^wf-(?P<symbol>[a-z0-9_]+)-(?P<type>api_[a-z0-9_]+)-(?P<day>\d{8})-(?P<h6>[0-9a-f]{6})-data$")
ENDED = frozenset({"success", "failed"})


@dataclass(frozen=True)
class DataTopic:
    name: str
    dag_id: str
    h6: str
    run_id: str | None  # the run whose attempt it belongs to; None: no run knows it
    why: str  # "unknown run", "run success", "replaced by attempt 2", "running"
    last_activity: datetime | None  # newest record or the run's end; None: neither

    @property
    def active(self) -> bool:
        return self.why == "running"

    def age(self, now: datetime) -> timedelta | None:
        return None if self.last_activity is None else now - self.last_activity


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _paged(api: Any, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = api.get(path, params={**(params or {}), "limit": 100, "offset": len(items)})
        if response.status_code == 404:
            return items
        response.raise_for_status()
        page = response.json()[key]
        items.extend(page)
        if len(page) < 100:
            return items


def _attempts(api: Any, dag_id: str) -> dict[str, tuple[str | None, int, int, dict[str, Any]]]:
    """h6 -> (run_id, attempt, latest attempt, run) for every `plan` attempt of the DAG's runs."""
    from streamforge.contracts.names import h6

    runs = {run["dag_run_id"]: run for run in _paged(api, f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs")}
    plans = _paged(api, f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", "task_instances", {"task_id": PLAN})
    known: dict[str, tuple[str | None, int, int, dict[str, Any]]] = {}
    for ti in plans:
        run_id, latest = ti["dag_run_id"], int(ti.get("try_number") or 0)
        for attempt in range(1, latest + 1):
            known[h6(dag_id, run_id, attempt)] = (run_id, attempt, latest, runs.get(run_id, {}))
    return known


def _newest_records(config: Mapping[str, Any], names: Iterable[str]) -> dict[str, datetime]:
    """Timestamp of each topic's newest record (topics without records are left out)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**config, "group.id": f"streamforge-topics-gc-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "log_level": 3})  # fmt: skip
    newest: dict[str, datetime] = {}
    try:
        metadata = consumer.list_topics(timeout=30).topics
        for name in names:
            for partition in metadata[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, partition, high - 1)])
                message = consumer.poll(10)
                if message is not None and message.error() is None:
                    stamp = datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC)
                    newest[name] = max(newest.get(name, stamp), stamp)
    finally:
        consumer.close()
    return newest


def classify(config: Mapping[str, Any], api: Any) -> list[DataTopic]:
    """Every per-run data topic of the cluster, with the run it belongs to and its last activity."""
    from confluent_kafka.admin import AdminClient

    from streamforge.contracts.names import dag_id as dag_id_of

    admin = AdminClient(dict(config))
    names = sorted(n for n in admin.list_topics(timeout=30).topics if DATA_TOPIC.match(n))
    newest = _newest_records(config, names)
    attempts: dict[str, dict[str, tuple[str | None, int, int, dict[str, Any]]]] = {}
    found = []
    for name in names:
        match = DATA_TOPIC.match(name)
        assert match is not None
        dag_id = dag_id_of(match["symbol"].upper(), match["type"])
        if dag_id not in attempts:
            attempts[dag_id] = _attempts(api, dag_id)
        run_id, attempt, latest, run = attempts[dag_id].get(match["h6"], (None, 0, 0, {}))
        state = run.get("state")
        if run_id is None:
            why = "unknown run"
        elif attempt < latest:
            why = f"replaced by attempt {latest}"
        elif state in ENDED:
            why = f"run {state}"
        else:
            why = "running"
        times = [t for t in (newest.get(name), _parse_time(run.get("end_date"))) if t is not None]
        found.append(DataTopic(name, dag_id, match["h6"], run_id, why, max(times) if times else None))
    return found


def leaked(topics: Iterable[DataTopic], older_than: timedelta, now: datetime) -> list[DataTopic]:
    out = []
    for topic in topics:
        age = topic.age(now)
        if not topic.active and (age is None or age >= older_than):
            out.append(topic)
    return out


def delete(config: Mapping[str, Any], names: list[str], timeout: float = 30) -> None:
    from confluent_kafka.admin import AdminClient

    if not names:
        return
    admin = AdminClient(dict(config))  # kept until the futures resolve (its handle serves them)
    for future in admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout).values():
        future.result()


def _local_stack(state_dir: Path | None) -> dict[str, Any]:
    from streamforge.cli.stack import STATE_FILE, _home

    path = _home(state_dir) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except OSError:
        raise typer.BadParameter(f"no running stack ({path} missing): start `streamforge up` or pass "
                                 "--airflow-url and --kafka-config") from None  # fmt: skip


@app.command()
def gc(
    older_than: Annotated[float, typer.Option(help="hours since the topic's last activity")] = 24,
    yes: Annotated[bool, typer.Option("--yes", help="delete them (without it, only list)")] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="the `streamforge up` stack to clean (default .stack/up)")
    ] = None,
    airflow_url: Annotated[str | None, typer.Option(help="Airflow's base URL (instead of a local stack)")] = None,
    airflow_user: Annotated[str, typer.Option(help="user for --airflow-url")] = "admin",
    airflow_password_file: Annotated[Path | None, typer.Option(help="file holding that user's password")] = None,
    kafka_config: Annotated[
        Path | None, typer.Option(help="JSON file of librdkafka settings (bootstrap.servers, security...)")
    ] = None,
) -> None:
    """List per-run data topics whose run has ended or that no run knows; delete them with --yes."""
    import httpx

    if airflow_url and kafka_config:
        config = json.loads(kafka_config.read_text())
        password = airflow_password_file.read_text().strip() if airflow_password_file else ""
    else:
        stack = _local_stack(state_dir)
        airflow_url, airflow_user = stack["airflow_ui"], stack["airflow_user"]
        password = json.loads(Path(stack["airflow_passwords_file"]).read_text())[airflow_user]
        config = {"bootstrap.servers": stack["kafka_bootstrap"]}
    token = httpx.post(f"{airflow_url}/auth/token", json={"username": airflow_user, "password": password}, timeout=30)
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    now = datetime.now(UTC)
    with httpx.Client(base_url=airflow_url, headers=headers, timeout=60) as api:
        topics = classify(config, api)
    doomed = leaked(topics, timedelta(hours=older_than), now)
    kept = len(topics) - len(doomed)
    for topic in doomed:
        age = topic.age(now)
        shown = f"{age.total_seconds() / 3600:.1f}h" if age is not None else "no activity"
        typer.echo(f"{topic.name}\t{topic.why}\t{topic.run_id or '-'}\t{shown}")
    typer.echo(f"{len(doomed)} leaked data topic(s), {kept} kept (running or younger than {older_than:g}h)")
    if doomed and yes:
        delete(config, [t.name for t in doomed])
        typer.echo(f"deleted {len(doomed)}")
    elif doomed:
        typer.echo("not deleted: add --yes to delete them")
