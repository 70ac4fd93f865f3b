"""DagBag load time of a 500-DAG catalog: the StreamForge factory vs dag-factory (same DAGs).

Generates a catalog of 250 symbols x 2 types (api_candles_1m, api_candles_1h) from the shipped
catalog's defaults (runner kubernetes: the production task shapes), and an equivalent
dag-factory 1.1 YAML of the same 500 DAGs: same DAG ids, schedule, start date, params (as
airflow.sdk.Param), tags, retries, the same 9 task ids with the same dependencies and trigger
rules, KubernetesPodOperator workers with the same pod spec, env templates and k8s objects
(`__type__`), our QueueOutcomeSensor. The `@task` functions (plan, create_topic, verify,
send_stop, delete_topic, watcher) become PythonOperators calling a stub; setup/teardown
markers, the deadline alert, failure callbacks/notifiers and doc_md have no dag-factory form
and are left out (so the dag-factory side does slightly less work).

Each load is a fresh interpreter (`python -m bench.airflow_dagbag measure FOLDER`): Airflow is
imported first (timed apart), then `DagBag(dag_folder=FOLDER)` is timed. Runs alternate between
the two, and the median of `--repeat` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CATALOG = REPO_ROOT / "dags" / "streamforge_catalog.yaml"
TYPES = ("api_candles_1m", "api_candles_1h")
DAGFACTORY_FILE = """\
# A DAG file for Airflow's DagBag: dag-factory builds the DAGs of the YAML next to it.
from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), config_filepath=str(Path(__file__).with_name("dagfactory.yml")))
"""


def task_stub(**_: Any) -> None:
    """The callable of the PythonOperator stand-ins (never run: only parsing is measured)."""


def symbols(count: int) -> list[str]:
    return [f"S{i:04d}USDT" for i in range(count)]


def write_catalog(path: Path, n_symbols: int) -> Path:
    doc = yaml.safe_load(SHIPPED_CATALOG.read_text())
    doc["pipelines"] = [{"name": "bench", "symbols": symbols(n_symbols), "types": list(TYPES)}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- the dag-factory YAML ----------------------------------------------------------------------


def _typed(type_: str, *args: Any, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"__type__": type_, **fields}
    if args:
        out["__args__"] = list(args)
    return out


def _param(default: Any, **schema: Any) -> dict[str, Any]:
    return _typed("airflow.sdk.Param", default, **schema)


def _params(spec: Any) -> dict[str, Any]:
    run = spec.settings.run
    dates = [{"type": "null"}, {"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
    return {
        "start": _param(None, title="Window start (inclusive)", anyOf=dates),
        "end": _param(None, title="Window end (exclusive)", anyOf=dates),
        "source": _param(run.source.value, type="string", enum=["auto", "rest", "archive"], title="Source"),
        "batch_size": _param(run.batch_size, type="integer", minimum=1, maximum=1000, title="Batch size"),
        "partitions": _param(spec.settings.topics.data_partitions, type="integer", minimum=1, maximum=64),
        "timeout_minutes": _param(run.timeout_minutes, type="integer", minimum=1, maximum=run.max_timeout_minutes),
    }


def _pod_task(spec: Any, role: Any, upstream: list[str]) -> dict[str, Any]:
    """The KubernetesPodOperator of runners/kubernetes.py, written as dag-factory YAML."""
    from streamforge.orchestration.spec import worker_spec

    worker = worker_spec(spec, role)
    kube = spec.settings.kubernetes
    k8s = "kubernetes.client"
    ca = kube.kafka_ca
    task: dict[str, Any] = {
        "task_id": worker.task_id,
        "operator": "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator",
        "namespace": kube.namespace,
        "name": worker.pod_name,
        "random_name_suffix": False,
        "image": worker.image,
        "image_pull_policy": kube.image_pull_policy,
        "cmds": list(worker.command[:3]),
        "arguments": list(worker.args),
        "env_vars": dict(worker.env),
        "env_from": [_typed(f"{k8s}.V1EnvFromSource",
                            config_map_ref=_typed(f"{k8s}.V1ConfigMapEnvSource", name=kube.env_config_map))],
        "secrets": [
            _typed("airflow.providers.cncf.kubernetes.secret.Secret", "env", r.env, r.secret, r.key)
            for r in worker.secret_refs
        ],
        "labels": {"app": "streamforge", "queue_id": worker.queue_id, "component": worker.component.value},
        "node_selector": dict(kube.node_selector),
        "service_account_name": kube.service_account,
        "automount_service_account_token": False,
        "security_context": _typed(
            f"{k8s}.V1PodSecurityContext", run_as_non_root=True, run_as_user=kube.run_as_user,
            run_as_group=kube.run_as_user, fs_group=kube.run_as_user,
            seccomp_profile=_typed(f"{k8s}.V1SeccompProfile", type="RuntimeDefault"),
        ),
        "container_security_context": _typed(
            f"{k8s}.V1SecurityContext", run_as_non_root=True, run_as_user=kube.run_as_user,
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            capabilities=_typed(f"{k8s}.V1Capabilities", drop=["ALL"]),
        ),
        "ports": [_typed(f"{k8s}.V1ContainerPort", name="metrics", container_port=kube.metrics_port, protocol="TCP")],
        "volumes": [
            _typed(f"{k8s}.V1Volume", name="kafka-ca", config_map=_typed(
                f"{k8s}.V1ConfigMapVolumeSource", name=ca.config_map,
                items=[_typed(f"{k8s}.V1KeyToPath", key=ca.key, path=ca.file_name)])),
            _typed(f"{k8s}.V1Volume", name="tmp",
                   empty_dir=_typed(f"{k8s}.V1EmptyDirVolumeSource", size_limit=kube.tmp_size_limit)),
        ],
        "volume_mounts": [
            _typed(f"{k8s}.V1VolumeMount", name="kafka-ca", mount_path=ca.mount_dir, read_only=True),
            _typed(f"{k8s}.V1VolumeMount", name="tmp", mount_path="/tmp"),  # noqa: S108 - in the pod
        ],
        "startup_timeout_seconds": kube.startup_timeout_seconds,
        "termination_grace_period": 60,
        "on_finish_action": kube.on_finish_action,
        "get_logs": True,
        "log_events_on_failure": True,
        "deferrable": True,
        "do_xcom_push": False,
        "retries": 0,
        "execution_timeout": _typed("datetime.timedelta", minutes=spec.settings.run.max_timeout_minutes + 30),
        "dependencies": upstream,
    }  # fmt: skip
    if worker.resources:
        task["container_resources"] = _typed(
            f"{k8s}.V1ResourceRequirements", requests=dict(worker.resources.requests),
            limits=dict(worker.resources.limits),
        )  # fmt: skip
    return task


def _python_task(task_id: str, upstream: list[str], trigger_rule: str | None = None, **extra: Any) -> dict[str, Any]:
    task = {"task_id": task_id, "operator": "airflow.providers.standard.operators.python.PythonOperator",
            "python_callable": f"{__name__}.task_stub", "dependencies": upstream, **extra}  # fmt: skip
    if trigger_rule:
        task["trigger_rule"] = trigger_rule
    return task


def dagfactory_config(catalog_file: Path) -> dict[str, Any]:
    """The dag-factory YAML document for every DAG of `catalog_file`."""
    from streamforge.orchestration.catalog import Role, read_catalog

    catalog = read_catalog(catalog_file, environ={})
    config: dict[str, Any] = {}
    # Parts equal for all DAGs of one data type are ONE object, which yaml.safe_dump writes once
    # as an anchor (&id) and then as aliases, as a YAML author would; dag-factory's loader
    # copies them per DAG while casting `__type__`.
    shared: dict[str, Any] = {}
    for spec in catalog.dags:
        s = spec.settings
        if spec.data_type in shared:
            config[spec.dag_id] = shared[spec.data_type] | {
                "tags": sorted({*s.tags, spec.symbol.lower(), spec.data_type, f"pipeline:{spec.pipeline}",
                                s.runner.value}),
                "description": f"Binance {spec.symbol} {spec.data_type} -> Kafka -> ArangoDB ({s.runner.value})",
            }  # fmt: skip
            continue
        work = ["run_loader", "run_sink", "await_outcome"]
        plan = "{{ ti.xcom_pull(task_ids='plan') }}"
        config[spec.dag_id] = {
            "description": f"Binance {spec.symbol} {spec.data_type} -> Kafka -> ArangoDB ({s.runner.value})",
            "schedule": _typed("airflow.timetables.interval.CronDataIntervalTimetable", s.schedule, "UTC"),
            "start_date": s.start_date.isoformat(),
            "catchup": False,
            "max_active_runs": s.max_active_runs,
            "params": _params(spec),
            "tags": sorted({*s.tags, spec.symbol.lower(), spec.data_type, f"pipeline:{spec.pipeline}", s.runner.value}),
            "default_args": {"owner": s.owner, "retries": s.retries,
                             "retry_delay": _typed("datetime.timedelta", minutes=s.retry_delay_minutes)},
            "tasks": [
                _python_task("plan", [], retries=0),
                _python_task("create_topic", ["plan"]),
                _pod_task(spec, Role.LOADER, ["create_topic"]),
                _pod_task(spec, Role.SINK, ["create_topic"]),
                {"task_id": "await_outcome", "operator": "streamforge.orchestration.sensor.QueueOutcomeSensor",
                 "plan": plan, "kafka_config_id": s.connections.kafka, "deferrable": True,
                 "poke_interval": s.sensor.poke_interval_seconds, "max_timeout_minutes": s.run.max_timeout_minutes,
                 "retries": 0, "dependencies": ["create_topic"]},
                _python_task("verify", work),
                _python_task("send_stop", work, "one_failed"),
                _python_task("delete_topic", ["verify", "send_stop"], "all_done"),
                _python_task("watcher", ["plan", "create_topic", *work, "verify", "send_stop", "delete_topic"],
                             "one_failed", retries=0),
            ],
        }  # fmt: skip
        shared[spec.data_type] = config[spec.dag_id]
    return config


def write_dagfactory(folder: Path, catalog_file: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagfactory.yml").write_text(yaml.safe_dump(dagfactory_config(catalog_file), sort_keys=False))
    (folder / "streamforge_dagfactory_dags.py").write_text(DAGFACTORY_FILE)
    return folder


# --- measuring ---------------------------------------------------------------------------------


def measure_in_process(folder: str) -> dict[str, Any]:
    """Import Airflow, then time DagBag(folder); run in a fresh interpreter."""
    began = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.perf_counter()
    bag = DagBag(dag_folder=folder)
    loaded = time.perf_counter()
    some = bag.dags[sorted(bag.dags)[0]] if bag.dags else None
    return {
        "import_s": imported - began,
        "load_s": loaded - imported,
        "dags": len(bag.dags),
        "tasks_per_dag": len(some.tasks) if some else 0,
        "task_ids": sorted(t.task_id for t in some.tasks) if some else [],
        "operators": sorted(f"{t.task_id}:{type(t).__name__}" for t in some.tasks) if some else [],
        "params": sorted(some.params) if some else [],
        "import_errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _measure(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.airflow_dagbag", "measure", str(folder)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"DagBag load of {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(n_symbols: int = 250, repeat: int = 3, log: Any = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sf-bench-dagbag-") as tmp:
        work = Path(tmp)
        catalog = write_catalog(work / "catalog.yaml", n_symbols)
        factory_dir = write_dagfactory(work / "dagfactory", catalog)
        yaml_bytes = (factory_dir / "dagfactory.yml").stat().st_size
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMFORGE_"))}
        base |= {"AIRFLOW_HOME": str(work / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                 "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900", "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
        variants = {
            "streamforge": (REPO_ROOT / "dags", base | {"AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                                                       "STREAMFORGE_CATALOG": str(catalog)}),
            "dag-factory": (factory_dir, base | {"AIRFLOW__CORE__DAGS_FOLDER": str(factory_dir)}),
        }  # fmt: skip
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for i in range(repeat):
            for name, (folder, env) in variants.items():
                sample = _measure(folder, env)
                if sample["import_errors"] or sample["dags"] != 2 * n_symbols:
                    raise RuntimeError(f"{name}: {sample['dags']} DAGs, import errors {sample['import_errors']}")
                samples[name].append(sample)
                log(f"  dagbag {name:<12} run {i + 1}/{repeat}: {sample['load_s']:.2f}s for {sample['dags']} DAGs")
    result: dict[str, Any] = {"dags": 2 * n_symbols, "repeat": repeat}
    for name, runs in samples.items():
        result[name] = {
            "load_s_median": statistics.median(r["load_s"] for r in runs),
            "load_s_all": [round(r["load_s"], 3) for r in runs],
            "import_airflow_s_median": statistics.median(r["import_s"] for r in runs),
            "tasks_per_dag": runs[0]["tasks_per_dag"],
            "max_rss_mb": max(r["max_rss_mb"] for r in runs),
        }
    ours, theirs = samples["streamforge"][0], samples["dag-factory"][0]
    result["same_task_ids"] = ours["task_ids"] == theirs["task_ids"]
    result["same_params"] = ours["params"] == theirs["params"]
    result["operators"] = {"streamforge": ours["operators"], "dag-factory": theirs["operators"]}
    result["ratio_streamforge_over_dagfactory"] = (
        result["streamforge"]["load_s_median"] / result["dag-factory"]["load_s_median"]
    )
    result["dagfactory_yaml_bytes"] = yaml_bytes
    result["notes"] = (
        "dag-factory 1.1 YAML (parts shared by all DAGs of a type written once, as YAML anchors) with the "
        "same DAG ids, schedule, params, 9 task ids/dependencies/trigger rules, "
        "KubernetesPodOperator pod specs and QueueOutcomeSensor; the 6 @task functions are PythonOperator "
        "stand-ins (stub callable); setup/teardown, deadline alert, callbacks/notifiers and doc_md are not "
        "expressible there and are left out."
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.airflow_dagbag")
    sub = parser.add_subparsers(dest="command", required=True)
    measure = sub.add_parser("measure", help="(internal) time one DagBag load, print JSON")
    measure.add_argument("folder")
    both = sub.add_parser("run", help="compare the StreamForge factory with dag-factory")
    both.add_argument("--symbols", type=int, default=250)
    both.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "measure":
        print(json.dumps(measure_in_process(args.folder)))
        return 0
    print(json.dumps(run(args.symbols, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
