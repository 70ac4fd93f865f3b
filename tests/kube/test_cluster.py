"""The control plane and the process-backed node, through the real API server (no Airflow).

What a kubelet must get right for the KubernetesPodOperator: scheduling by nodeSelector, env as
Kubernetes resolves it (ConfigMap envFrom, secretKeyRef, fieldRef, a mounted ConfigMap file),
phases and exit codes, logs through the API server (a followed stream that ends), deletion with
SIGTERM and the grace period, and config errors reported like a kubelet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kube import NODE

NS = "default"
IMAGE = "ghcr.io/streamforge/dummy-service:0.1.0"


def _wait(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _pod(name: str, script: str, **spec: Any) -> client.V1Pod:
    container = client.V1Container(name="base", image=IMAGE, command=["python", "-c", script],
                                   **spec.pop("container", {}))  # fmt: skip
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "streamforge-test"}),
        spec=client.V1PodSpec(containers=[container], restart_policy="Never",
                              node_selector={"streamforge-worker": "true"}, **spec),
    )  # fmt: skip


def _finished(core: Any, name: str) -> Callable[[], Any]:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, NS)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return check


def _gone(core: Any, name: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            core.read_namespaced_pod(name, NS)
        except ApiException as exc:
            return exc.status == 404
        return False

    return check


def _logs(core: Any, name: str, **query: Any) -> str:
    """The raw body (the client mangles a followed log into a bytes repr otherwise)."""
    return core.read_namespaced_pod_log(name, NS, _preload_content=False, **query).data.decode()


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_the_node_is_registered_ready_and_labelled(kube_core: Any) -> None:
    node = kube_core.read_node(NODE)
    assert node.metadata.labels["streamforge-worker"] == "true"
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert node.status.daemon_endpoints.kubelet_endpoint.port > 0


def test_a_pod_runs_with_its_env_resolved_and_its_logs_served(kube_core: Any, name: str) -> None:
    kube_core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name), data={"FROM_MAP": "map-value", "ca.crt": "CA-PEM"}))  # fmt: skip
    kube_core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), string_data={"password": "s3cret"}))  # fmt: skip
    script = (
        "import os; print('map', os.environ['FROM_MAP']); print('secret', os.environ['PASSWORD']);"
        "print('pod', os.environ['POD_NAME']); print('ca', open(os.environ['CA_PATH']).read());"
        "print('expanded', os.environ['EXPANDED'])"
    )
    pod = _pod(name, script, container={
        "env_from": [client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(name=name))],
        "env": [
            client.V1EnvVar(name="PASSWORD", value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name=name, key="password"))),
            client.V1EnvVar(name="POD_NAME", value_from=client.V1EnvVarSource(
                field_ref=client.V1ObjectFieldSelector(field_path="metadata.name"))),
            client.V1EnvVar(name="CA_PATH", value="/etc/ca/ca.crt"),
            client.V1EnvVar(name="EXPANDED", value="$(FROM_MAP)-x"),
        ],
        "volume_mounts": [client.V1VolumeMount(name="ca", mount_path="/etc/ca", read_only=True)],
    }, volumes=[client.V1Volume(name="ca", config_map=client.V1ConfigMapVolumeSource(
        name=name, items=[client.V1KeyToPath(key="ca.crt", path="ca.crt")]))])  # fmt: skip
    kube_core.create_namespaced_pod(NS, pod)
    done = _wait(_finished(kube_core, name), what=f"pod {name} to finish")
    assert done.spec.node_name == NODE
    assert done.status.phase == "Succeeded"
    (status,) = done.status.container_statuses
    assert status.state.terminated.exit_code == 0 and status.state.terminated.reason == "Completed"
    logs = _logs(kube_core, name, container="base", follow=True)
    assert logs.splitlines() == ["map map-value", "secret s3cret", f"pod {name}", "ca CA-PEM", "expanded map-value-x"]
    stamped = _logs(kube_core, name, timestamps=True, tail_lines=1)
    assert stamped.endswith(" expanded map-value-x\n") and stamped[:4].isdigit()
    kube_core.delete_namespaced_pod(name, NS)
    _wait(_gone(kube_core, name), what="the finished pod to be deleted")


def test_a_failing_pod_reports_its_exit_code(kube_core: Any, name: str) -> None:
    kube_core.create_namespaced_pod(NS, _pod(name, "import sys; print('bye'); sys.exit(3)"))
    done = _wait(_finished(kube_core, name), what=f"pod {name} to fail")
    assert done.status.phase == "Failed"
    terminated = done.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    kube_core.delete_namespaced_pod(name, NS)


def test_a_followed_log_streams_while_the_process_runs_and_ends_with_it(kube_core: Any, name: str) -> None:
    script = "import time\nfor i in range(3):\n    print('tick', i, flush=True); time.sleep(1)"
    kube_core.create_namespaced_pod(NS, _pod(name, script))
    _wait(lambda: kube_core.read_namespaced_pod(name, NS).status.phase == "Running", what="Running")
    began = time.monotonic()
    logs = _logs(kube_core, name, follow=True, _request_timeout=60)
    assert logs.splitlines() == ["tick 0", "tick 1", "tick 2"]
    assert time.monotonic() - began < 30  # the stream ended with the process, not at a timeout
    kube_core.delete_namespaced_pod(name, NS)


def test_deleting_a_running_pod_sends_sigterm_and_honours_the_grace_period(kube_core: Any, name: str) -> None:
    script = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('got SIGTERM', flush=True); sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\nwhile True: time.sleep(0.1)"
    )
    kube_core.create_namespaced_pod(NS, _pod(name, script, termination_grace_period_seconds=30))
    _wait(lambda: "ready" in _logs(kube_core, name), what="the process to start")
    kube_core.delete_namespaced_pod(name, NS)
    _wait(_gone(kube_core, name), timeout=20, what="the pod to be gone (SIGTERM honoured)")


def test_sigkill_after_the_grace_period(kube_core: Any, name: str) -> None:
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(600)"
    )
    kube_core.create_namespaced_pod(NS, _pod(name, script, termination_grace_period_seconds=2))
    _wait(lambda: "ready" in _logs(kube_core, name), what="the process to start")
    began = time.monotonic()
    kube_core.delete_namespaced_pod(name, NS)
    _wait(_gone(kube_core, name), timeout=30, what="the pod to be gone after SIGKILL")
    assert time.monotonic() - began >= 2


def test_a_missing_secret_key_is_a_container_config_error(kube_core: Any, name: str) -> None:
    pod = _pod(name, "print('never')", container={"env": [client.V1EnvVar(name="X", value_from=client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name=f"{name}-absent", key="k")))]})  # fmt: skip
    kube_core.create_namespaced_pod(NS, pod)

    def waiting() -> Any:
        statuses = kube_core.read_namespaced_pod(name, NS).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting is not None and waiting.reason == "CreateContainerConfigError"

    _wait(waiting, what="CreateContainerConfigError")
    assert kube_core.read_namespaced_pod(name, NS).status.phase == "Pending"
    kube_core.delete_namespaced_pod(name, NS)
    _wait(_gone(kube_core, name), what="the pending pod to be deleted")


def test_a_pod_no_node_matches_stays_unscheduled(kube_core: Any, name: str) -> None:
    pod = _pod(name, "print('never')")
    pod.spec.node_selector = {"streamforge-worker": "elsewhere"}
    kube_core.create_namespaced_pod(NS, pod)
    _wait(lambda: any(c.type == "PodScheduled" and c.status == "False"
                      for c in kube_core.read_namespaced_pod(name, NS).status.conditions or []),
          what="the scheduler to report the pod unschedulable")  # fmt: skip
    assert kube_core.read_namespaced_pod(name, NS).spec.node_name is None
    kube_core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
