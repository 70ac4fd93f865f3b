"""A process-backed Kubernetes node: the kubelet's job for pods bound to it, with processes.

Test infrastructure for the container runtime only. Everything else - admission, RBAC, the
scheduler's nodeSelector, Secrets, ConfigMaps, deletion - is the real API server's.

    python -m streamforge.stack.kube.node --kubeconfig K --name N --port P --cert C --key K --ca CA --workdir D

What it does, as a kubelet would:

* registers Node `N` (labels `streamforge-worker: "true"`, `kubernetes.io/hostname`), Ready,
  InternalIP 127.0.0.1 and its kubelet port in `status.daemonEndpoints`;
* watches the pods bound to it (`spec.nodeName=N`); for each container runs the program its
  image names (streamforge.stack.kube.images: the project's Dockerfiles) with the pod's
  command/args, and the env resolved like a kubelet: image ENV, `envFrom` ConfigMaps/Secrets,
  `env` values with `$(VAR)` expansion, `secretKeyRef`/`configMapKeyRef`/`fieldRef`. A missing
  Secret/ConfigMap/key leaves the container waiting in CreateContainerConfigError (retried);
* volumes: `configMap`, `secret` (items or all keys) and `emptyDir` become directories of the
  pod. A process cannot see them at their mountPath, so an env value under a mountPath is
  rewritten to the same file in the pod's directory (KAFKA_CA_PATH), and a `/tmp` mount becomes
  TMPDIR;
* reports Pending -> Running -> Succeeded/Failed with exit code, reason and times in
  `containerStatuses` (restartPolicy is treated as Never: the pods here are KPO pods);
* serves `/containerLogs/{ns}/{pod}/{container}` (follow, timestamps, tailLines, sinceTime,
  sinceSeconds) over HTTPS for the API server, verifying its client certificate; a followed
  stream ends when the process has exited and its output is sent;
* honours deletion: SIGTERM to the process group, the grace period, SIGKILL, then the final
  delete (grace 0) that only the kubelet issues.

Not modelled: images are not pulled (no image is built here), the pod's securityContext (user,
read-only root) and resource limits are not applied, all pods share the host network.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from streamforge.stack.kube import images

log = logging.getLogger("streamforge.kube.node")
WORKER_LABEL = "streamforge-worker"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigError(Exception):
    """What a kubelet reports as CreateContainerConfigError."""


@dataclass
class Container:
    name: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exit_code: int | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    done: threading.Event = field(default_factory=threading.Event)

    def status(self, image: str) -> dict[str, Any]:
        if self.exit_code is not None:
            state: dict[str, Any] = {"terminated": {
                "exitCode": self.exit_code,
                "reason": "Completed" if self.exit_code == 0 else "Error",
                "startedAt": rfc3339(self.started_at or now()),
                "finishedAt": rfc3339(self.finished_at or now()),
            }}  # fmt: skip
        elif self.process is not None:
            state = {"running": {"startedAt": rfc3339(self.started_at or now())}}
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        running = "running" in state
        return {"name": self.name, "image": image, "imageID": "", "state": state, "ready": running,
                "started": running, "restartCount": 0}  # fmt: skip


@dataclass
class PodRun:
    namespace: str
    name: str
    uid: str
    directory: Path
    containers: dict[str, Container]
    images: dict[str, str]
    started_at: dt.datetime = field(default_factory=now)
    deleting: bool = False


class ProcessNode:
    """:param api: ApiClient authenticated as `system:node:<name>`.
    :param container_start_seconds: how long a pod stays ContainerCreating before its process
        starts, as a kubelet pulling an image and creating the container would.
    """

    def __init__(self, api: Any, name: str, port: int, workdir: Path, container_start_seconds: float = 0.0) -> None:
        self.core = client.CoreV1Api(api)
        self.container_start_seconds = container_start_seconds
        self.name = name
        self.port = port
        self.workdir = workdir
        self.pods: dict[str, PodRun] = {}  # uid -> run
        self.lock = threading.RLock()
        self.stopping = threading.Event()

    # --- node -------------------------------------------------------------------------------

    def register(self) -> None:
        body = client.V1Node(metadata=client.V1ObjectMeta(
            name=self.name, labels={WORKER_LABEL: "true", "kubernetes.io/hostname": self.name,
                                    "kubernetes.io/os": "linux"}))  # fmt: skip
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._report_node()

    def _report_node(self) -> None:
        stamp = rfc3339(now())
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        status = {"status": {
            "capacity": capacity, "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "process-backed node is posting ready status",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.36.3",
                         "kubeProxyVersion": "", "containerRuntimeVersion": "process://streamforge",
                         "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        }}  # fmt: skip
        self.core.patch_node_status(self.name, status)

    # --- main loop --------------------------------------------------------------------------

    def run(self) -> None:
        heartbeat = threading.Thread(target=self._heartbeat, daemon=True)
        heartbeat.start()
        while not self.stopping.is_set():
            try:
                self._sync_all()
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.name}",
                    timeout_seconds=20,
                )
                for event in stream:
                    if self.stopping.is_set():
                        break
                    self._sync(event["object"], gone=event["type"] == "DELETED")
            except Exception:  # the API server may be restarting: back off, relist
                log.exception("watch failed")
                self.stopping.wait(1)

    def _heartbeat(self) -> None:
        while not self.stopping.wait(5):
            with contextlib.suppress(Exception):
                self._report_node()
            with contextlib.suppress(Exception):
                self._sync_all()  # retries containers waiting on a missing Secret/ConfigMap

    def _sync_all(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.name}").items
        for pod in pods:
            self._sync(pod)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            runs = list(self.pods.values())
        for run in runs:
            self._kill(run, grace=5)

    # --- pods -------------------------------------------------------------------------------

    def _sync(self, pod: Any, gone: bool = False) -> None:
        uid = pod.metadata.uid
        with self.lock:
            run = self.pods.get(uid)
            if gone:
                if run:
                    self._kill(run, grace=0)
                    self.pods.pop(uid, None)
                return
            if pod.metadata.deletion_timestamp is not None:
                if run is None or not run.deleting:
                    grace = pod.metadata.deletion_grace_period_seconds
                    threading.Thread(target=self._delete, args=(pod, run, grace), daemon=True).start()
                    if run:
                        run.deleting = True
                return
            if pod.status.phase in ("Succeeded", "Failed"):
                return
            if run is None:
                run = self._admit(pod)
                if self.container_start_seconds > 0:
                    threading.Timer(self.container_start_seconds, self._sync_all).start()
            if (now() - run.started_at).total_seconds() < self.container_start_seconds:
                return  # still "creating the container"
            if any(c.process is None and c.exit_code is None for c in run.containers.values()):
                self._start(pod, run)

    def _admit(self, pod: Any) -> PodRun:
        directory = self.workdir / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}"
        directory.mkdir(parents=True, exist_ok=True)
        run = PodRun(
            pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, directory,
            {c.name: Container(c.name, directory / f"{c.name}.log") for c in pod.spec.containers},
            {c.name: c.image for c in pod.spec.containers},
        )  # fmt: skip
        self.pods[pod.metadata.uid] = run
        self._report(run)
        log.info("admitted %s/%s", run.namespace, run.name)
        return run

    def _start(self, pod: Any, run: PodRun) -> None:
        try:
            mounts = self._volumes(pod, run)
        except ConfigError as exc:
            for container in run.containers.values():
                container.waiting = ("CreateContainerConfigError", str(exc))
            self._report(run)
            return
        for spec in pod.spec.containers:
            container = run.containers[spec.name]
            if container.process is not None or container.exit_code is not None:
                continue
            try:
                image = images.resolve(spec.image)
            except images.ImageNotFound as exc:
                container.waiting = ("ErrImagePull", str(exc))
                continue
            try:
                env = self._env(pod, spec, image, mounts.get(spec.name, {}))
            except ConfigError as exc:
                container.waiting = ("CreateContainerConfigError", str(exc))
                continue
            argv = image.argv(spec.command, spec.args)
            argv = [_expand(a, env) for a in argv]
            container.process = subprocess.Popen(
                argv, env=env, cwd=run.directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            container.started_at, container.waiting = now(), None
            log.info("started %s/%s %s: %s", run.namespace, run.name, spec.name, " ".join(argv))
            threading.Thread(target=self._pump, args=(run, container), daemon=True).start()
        self._report(run)

    def _pump(self, run: PodRun, container: Container) -> None:
        """Copies the output into the log, one RFC 3339 timestamp per line (the CRI log format)."""
        assert container.process is not None and container.process.stdout is not None
        with open(container.log_path, "ab", buffering=0) as out:
            for line in container.process.stdout:
                stamp = now().strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
                out.write(stamp + b" " + (line if line.endswith(b"\n") else line + b"\n"))
        code = container.process.wait()
        container.exit_code = 128 - code if code < 0 else code  # killed by signal N: 128+N
        container.finished_at = now()
        container.done.set()
        log.info("%s/%s %s exited %s", run.namespace, run.name, container.name, container.exit_code)
        with contextlib.suppress(Exception):
            self._report(run)

    def _report(self, run: PodRun) -> None:
        containers = list(run.containers.values())
        statuses = [c.status(run.images[c.name]) for c in containers]
        if all(c.exit_code is not None for c in containers):
            phase = "Succeeded" if all(c.exit_code == 0 for c in containers) else "Failed"
        elif all(c.process is not None or c.exit_code is not None for c in containers):
            phase = "Running"
        else:
            phase = "Pending"
        ready = "True" if phase == "Running" else "False"
        stamp = rfc3339(now())
        conditions = [{"type": t, "status": s, "lastTransitionTime": stamp}
                      for t, s in (("Initialized", "True"), ("ContainersReady", ready), ("Ready", ready))]  # fmt: skip
        body = {"status": {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                           "podIPs": [{"ip": "127.0.0.1"}], "startTime": rfc3339(run.started_at),
                           "conditions": conditions, "containerStatuses": statuses}}  # fmt: skip
        try:
            self.core.patch_namespaced_pod_status(run.name, run.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _delete(self, pod: Any, run: PodRun | None, grace: int | None) -> None:
        if run is not None:
            self._kill(run, grace=30 if grace is None else grace)
        with contextlib.suppress(ApiException):
            only_this = client.V1Preconditions(uid=pod.metadata.uid)  # not a new pod of the same name
            self.core.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=only_this),
            )
        log.info("deleted %s/%s", pod.metadata.namespace, pod.metadata.name)
        with self.lock:
            self.pods.pop(pod.metadata.uid, None)
        if run is not None:
            shutil.rmtree(run.directory, ignore_errors=True)

    def _kill(self, run: PodRun, grace: float) -> None:
        """SIGTERM, up to `grace` seconds, SIGKILL - to each container's process group."""
        running = [c for c in run.containers.values() if c.process is not None and c.exit_code is None]
        for container in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.process.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for container in running:
            if not container.done.wait(max(deadline - time.monotonic(), 0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(container.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
                container.done.wait(10)

    # --- env and volumes --------------------------------------------------------------------

    def _read(self, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
        try:
            if kind == "secret":
                obj = self.core.read_namespaced_secret(name, namespace)
                return {k: base64.b64decode(v).decode() for k, v in (obj.data or {}).items()}
            obj = self.core.read_namespaced_config_map(name, namespace)
            return dict(obj.data or {})
        except ApiException as exc:
            if exc.status == 404 and optional:
                return None
            if exc.status == 404:
                raise ConfigError(f'{kind} "{name}" not found') from None
            raise ConfigError(f"{kind} {name}: {exc.status} {exc.reason}") from None

    def _key(self, kind: str, namespace: str, ref: Any) -> str | None:
        data = self._read(kind, namespace, ref.name, bool(ref.optional))
        if data is None:
            return None
        if ref.key not in data:
            if ref.optional:
                return None
            raise ConfigError(f"couldn't find key {ref.key} in {kind} {namespace}/{ref.name}")
        return data[ref.key]

    def _volumes(self, pod: Any, run: PodRun) -> dict[str, dict[str, Path]]:
        """Materialises the volumes; returns container -> {mountPath: local path}."""
        local: dict[str, Path] = {}
        for volume in pod.spec.volumes or []:
            target = run.directory / "volumes" / volume.name
            source = volume.config_map or volume.secret
            if source is not None:
                kind = "configmap" if volume.config_map else "secret"
                name = volume.config_map.name if volume.config_map else volume.secret.secret_name
                data = self._read(kind, pod.metadata.namespace, name, bool(source.optional)) or {}
                items = source.items or [client.V1KeyToPath(key=k, path=k) for k in data]
                target.mkdir(parents=True, exist_ok=True)
                for item in items:
                    if item.key not in data:
                        raise ConfigError(f"couldn't find key {item.key} in {kind} {name}")
                    path = target / item.path
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item.key])
            else:  # emptyDir (and anything else) is an empty directory of the pod
                target.mkdir(parents=True, exist_ok=True)
            local[volume.name] = target
        mounts: dict[str, dict[str, Path]] = {}
        for spec in pod.spec.containers:
            for mount in spec.volume_mounts or []:
                path = local.get(mount.name)
                if path is not None:
                    mounts.setdefault(spec.name, {})[mount.mount_path.rstrip("/") or "/"] = (
                        path / mount.sub_path if mount.sub_path else path
                    )
        return mounts

    def _field(self, pod: Any, path: str) -> str:
        simple = {
            "metadata.name": pod.metadata.name,
            "metadata.namespace": pod.metadata.namespace,
            "metadata.uid": pod.metadata.uid,
            "spec.nodeName": pod.spec.node_name,
            "spec.serviceAccountName": pod.spec.service_account_name,
            "status.hostIP": "127.0.0.1",
            "status.podIP": "127.0.0.1",
        }
        if path in simple:
            return simple[path] or ""
        if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
            return (getattr(pod.metadata, match.group(1)) or {}).get(match.group(2), "")
        raise ConfigError(f"unsupported fieldRef {path}")

    def _env(self, pod: Any, spec: Any, image: images.Image, mounts: dict[str, Path]) -> dict[str, str]:
        namespace = pod.metadata.namespace
        env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod.metadata.name,
                               **image.env}  # fmt: skip
        for source in spec.env_from or []:
            ref = source.config_map_ref or source.secret_ref
            kind = "configmap" if source.config_map_ref else "secret"
            data = self._read(kind, namespace, ref.name, bool(ref.optional)) or {}
            env.update({f"{source.prefix or ''}{k}": v for k, v in data.items()})
        for var in spec.env or []:
            if var.value_from is None:
                env[var.name] = _expand(var.value or "", env)
                continue
            source = var.value_from
            if source.secret_key_ref is not None:
                value = self._key("secret", namespace, source.secret_key_ref)
            elif source.config_map_key_ref is not None:
                value = self._key("configmap", namespace, source.config_map_key_ref)
            elif source.field_ref is not None:
                value = self._field(pod, source.field_ref.field_path)
            else:
                raise ConfigError(f"env {var.name}: unsupported valueFrom")
            if value is not None:
                env[var.name] = value
        for key, value in list(env.items()):
            env[key] = _rebase(value, mounts)
        if "/tmp" in mounts:  # noqa: S108 - the pod's /tmp
            env["TMPDIR"] = str(mounts["/tmp"])  # noqa: S108
        return env


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables only, `$$` escapes."""
    return _VAR_REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def _rebase(value: str, mounts: dict[str, Path]) -> str:
    """A path under a mountPath -> the same file in the pod's volume directory."""
    for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(local) + value[len(mount_path) :]
    return value


# --- the kubelet log endpoint ----------------------------------------------------------------


def _log_lines(path: Path, since: dt.datetime | None, timestamps: bool) -> tuple[list[bytes], int]:
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines(keepends=True):
        stamp, _, text = line.partition(b" ")
        if since is not None and dt.datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")) < since:
            continue
        out.append(line if timestamps else text)
    return out, end


def serve_logs(node: ProcessNode, cert: Path, key: Path, ca: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes: a followed stream

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/healthz":
                return self._send(200, b"ok")
            match = re.fullmatch(r"/containerLogs/([^/]+)/([^/]+)/([^/]+)", url.path)
            if not match:
                return self._send(404, b"not found")
            namespace, name, container_name = match.groups()
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            with node.lock:
                run = next((r for r in node.pods.values() if (r.namespace, r.name) == (namespace, name)), None)
            container = run.containers.get(container_name) if run else None
            if container is None:
                return self._send(404, f"container {container_name} of pod {namespace}/{name} not found".encode())
            since = None
            if query.get("sinceTime"):
                since = dt.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
            elif query.get("sinceSeconds"):
                since = now() - dt.timedelta(seconds=int(query["sinceSeconds"]))
            timestamps = query.get("timestamps") == "true"
            follow = query.get("follow") == "true"
            lines, offset = _log_lines(container.log_path, since, timestamps)
            if query.get("tailLines"):
                lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) else []
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"".join(lines))
            while follow:
                exited = container.done.is_set()
                data = container.log_path.read_bytes()[offset:] if container.log_path.exists() else b""
                data = data[: data.rfind(b"\n") + 1]
                if data:
                    offset += len(data)
                    chunk = data if timestamps else b"".join(ln.partition(b" ")[2] for ln in data.splitlines(True))
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif exited:
                    break
                else:
                    container.done.wait(0.2)
            return None

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", node.port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED  # only the API server (its kubelet client certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamforge.stack.kube.node", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path, help="identity system:node:<name>")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", required=True, type=int, help="kubelet port (HTTPS, logs)")
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--ca", required=True, type=Path, help="verifies the API server's client certificate")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--container-start-seconds", type=float, default=0.0,
                        help="ContainerCreating time before a pod's process starts (image pull + create)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    node = ProcessNode(config.new_client_from_config(config_file=str(args.kubeconfig)), args.name, args.port,
                       args.workdir, args.container_start_seconds)  # fmt: skip
    server = serve_logs(node, args.cert, args.key, args.ca)
    node.register()
    log.info("node %s registered, kubelet port %s", args.name, args.port)

    def _stop(signum: int, frame: Any) -> None:
        node.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker = threading.Thread(target=node.run, daemon=True)
    worker.start()
    node.stopping.wait()
    node.stop()
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
