"""The `kubernetes` runner: a WorkerSpec as a deferrable KubernetesPodOperator.

Pod conventions (the same as helm-values/k8s/*-job.yaml): namespace from the catalog (stf),
labels app/queue_id/component, the worker nodeSelector, ServiceAccount without a token,
non-root 1001 with a read-only root filesystem (a small /tmp emptyDir), no privilege
escalation, all capabilities dropped, RuntimeDefault seccomp.

Configuration reaches the container in three ways, never mixed:
* literal env: only the run's non-secret values, templated from the plan XCom;
* envFrom the worker ConfigMap: cluster settings (Kafka bootstrap/protocol/CA path, topics,
  ArangoDB URL/database);
* secretKeyRef: KAFKA_USER, KAFKA_PASSWORD, ARANGO_USER, ARANGO_PASSWORD.

on_finish_action defaults to delete_pod: the container log is streamed into the task log
(get_logs) and pod events are logged on failure, so a finished pod keeps nothing we need, and
one pod per worker per run per day would otherwise pile up in `stf` (delete_succeeded_pod
would keep every failed pod until someone cleans up). A catalog override can keep them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk import Context
from kubernetes.client import models as k8s

from streamforge.orchestration.catalog import DagSpec
from streamforge.orchestration.guards import claim_queue
from streamforge.orchestration.spec import WorkerSpec

APP_LABEL = "streamforge"
KAFKA_CA_VOLUME = "kafka-ca"
TMP_VOLUME = "tmp"


def pod_security_context(run_as: int) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=run_as,
        run_as_group=run_as,
        fs_group=run_as,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context(run_as: int) -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=run_as,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


class StreamforgePodOperator(KubernetesPodOperator):
    """KubernetesPodOperator that first claims the plan's queue (guards.claim_queue)."""

    def execute(self, context: Context) -> Any:
        claim_queue(context, self.labels["queue_id"])
        return super().execute(context)


def pod_operator(spec: DagSpec, worker: WorkerSpec, **kwargs: Any) -> KubernetesPodOperator:
    kube = spec.settings.kubernetes
    ca = kube.kafka_ca
    resources = (
        k8s.V1ResourceRequirements(requests=dict(worker.resources.requests), limits=dict(worker.resources.limits))
        if worker.resources
        else None
    )
    return StreamforgePodOperator(
        task_id=worker.task_id,
        kubernetes_conn_id=kube.kubernetes_conn_id,
        namespace=kube.namespace,
        name=worker.pod_name,
        random_name_suffix=False,  # the plan's pod name is unique per run attempt (h6)
        image=worker.image,
        image_pull_policy=kube.image_pull_policy,
        cmds=list(worker.command[:3]),
        arguments=list(worker.args),
        env_vars=dict(worker.env),
        env_from=[k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=kube.env_config_map))],
        secrets=[Secret("env", ref.env, ref.secret, ref.key) for ref in worker.secret_refs],
        labels={"app": APP_LABEL, "queue_id": worker.queue_id, "component": worker.component.value},
        node_selector=dict(kube.node_selector),
        service_account_name=kube.service_account,
        automount_service_account_token=False,
        security_context=pod_security_context(kube.run_as_user),
        container_security_context=container_security_context(kube.run_as_user),
        container_resources=resources,
        ports=[k8s.V1ContainerPort(name="metrics", container_port=kube.metrics_port, protocol="TCP")],
        volumes=[
            k8s.V1Volume(
                name=KAFKA_CA_VOLUME,
                config_map=k8s.V1ConfigMapVolumeSource(
                    name=ca.config_map, items=[k8s.V1KeyToPath(key=ca.key, path=ca.file_name)]
                ),
            ),
            k8s.V1Volume(name=TMP_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=kube.tmp_size_limit)),
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name=KAFKA_CA_VOLUME, mount_path=ca.mount_dir, read_only=True),
            k8s.V1VolumeMount(name=TMP_VOLUME, mount_path="/tmp"),  # noqa: S108 - in the pod
        ],
        startup_timeout_seconds=kube.startup_timeout_seconds,
        # SIGTERM makes a worker stop cleanly (`interrupted`, exit 3) before it is killed.
        termination_grace_period=60,
        on_finish_action=kube.on_finish_action,
        get_logs=True,
        log_events_on_failure=True,
        deferrable=True,
        do_xcom_push=False,
        retries=0,
        execution_timeout=timedelta(minutes=spec.settings.run.max_timeout_minutes + 30),
        **kwargs,
    )
