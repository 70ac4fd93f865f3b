"""A real Kubernetes control plane on 127.0.0.1, without containers: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler as child processes, from the pinned binaries that
build.sh compiles once into a cache outside git.

* TLS everywhere on the API server (a fresh test CA per start); users authenticate with static
  tokens (`--token-auth-file`): `admin` (system:masters), the scheduler, the controller-manager,
  and one `system:node:<name>` identity per process-backed node (group system:nodes).
* Authorization `Node,RBAC` with the NodeRestriction admission plugin: the shipped Roles are
  enforced, and a node reads only the Secrets/ConfigMaps of the pods bound to it, as a kubelet.
* controller-manager runs only the controllers a pod-launching test needs: namespace (namespace
  deletion finishes), serviceaccount (the `default` SA), serviceaccount-token,
  root-ca-certificate-publisher and garbage-collector. No node lifecycle controller: nodes are
  never tainted not-ready.
* The API server reaches kubelets (logs) over HTTPS at the node's InternalIP and kubelet port,
  verifying them with the test CA (`--kubelet-certificate-authority`) and presenting a client
  certificate of its own.

Every port is free and bound to 127.0.0.1; the etcd data dir is fresh per start. stop() stops
the components in reverse order (kube-apiserver can hang on SIGTERM once etcd is gone).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from streamforge.stack.kafka import free_ports
from streamforge.stack.kube import pki

BUILD_SCRIPT = Path(__file__).with_name("build.sh")
BIN_ENV = "STREAMFORGE_KUBE_BIN"  # a directory with prebuilt binaries (skips build.sh)
TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm")
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = "namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher,garbagecollector"


class KubeHarnessError(RuntimeError):
    """The control plane could not be built, started or reached."""


def ensure_binaries(log: Callable[[str], None] = lambda _line: None) -> Path:
    """The directory of the pinned binaries, built by build.sh on first use (~15-30 min cold)."""
    if override := os.environ.get(BIN_ENV):
        return Path(override)
    check = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], stdout=subprocess.PIPE, text=True, check=False)
    if check.returncode != 0:
        log(f"building the Kubernetes binaries once (~15-30 min on 2 cores): bash {BUILD_SCRIPT}")
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise KubeHarnessError(f"{BUILD_SCRIPT.name} failed with exit {proc.returncode} (its log is above)")
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    missing = [t for t in TOOLS if not (bin_dir / t).is_file()]
    if missing:
        raise KubeHarnessError(f"{bin_dir} lacks {', '.join(missing)}")
    return bin_dir


@dataclass(frozen=True)
class User:
    name: str
    token: str
    groups: tuple[str, ...] = ()


def kubeconfig(
    server: str, ca: Path, user: str, credentials: dict[str, str], namespace: str = "default"
) -> dict[str, Any]:
    """`credentials`: {"token": ...} or {"client-certificate": path, "client-key": path}."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "streamforge", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "streamforge", "user": user, "namespace": namespace}}],
        "current-context": user,
    }


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on free local ports.

    :param home: working directory (certificates, kubeconfigs, etcd data, component logs);
        a temp dir by default, removed by cleanup().
    :param bin_dir: the binaries (default: ensure_binaries()).
    :param log: progress lines.
    """

    def __init__(
        self,
        home: Path | None = None,
        bin_dir: Path | None = None,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.home = home or Path(tempfile.mkdtemp(prefix="sf-kube-"))
        self.bin_dir = bin_dir
        self.log = log
        self.etcd_port, self.etcd_peer_port, self.port = free_ports(3)
        self.server = f"https://127.0.0.1:{self.port}"
        self.users: dict[str, User] = {}
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ca: Any = None

    # --- paths ------------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.home / "pki"

    @property
    def ca_path(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig_path("admin")

    def kubeconfig_path(self, user: str) -> Path:
        return self.home / "kubeconfig" / f"{user.replace(':', '_')}.yaml"

    def tool(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> ControlPlane:
        began = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = ensure_binaries(self.log)
        self.timings["binaries"] = time.monotonic() - began
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._write_pki()
            self._spawn("etcd", self._etcd_args())
            self._spawn("kube-apiserver", self._apiserver_args())
            self._wait_ready(time.monotonic() + timeout)
            self.timings["apiserver ready"] = time.monotonic() - began
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._wait_default_service_account(time.monotonic() + timeout)
            self.timings["default ServiceAccount"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise
        self.log(f"Kubernetes API {self.server} ready in {time.monotonic() - began:.1f}s (home {self.home})")
        return self

    def stop(self) -> None:
        """Reverse order; SIGKILL whatever does not exit within 15 s."""
        for name in reversed(list(self._procs)):
            proc = self._procs.pop(name)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def running(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self._procs.items()}

    def log_tail(self, component: str, lines: int = 40) -> str:
        path = self.home / "logs" / f"{component}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- users ------------------------------------------------------------------------------

    def add_user(self, name: str, groups: Iterable[str] = ()) -> User:
        """A static-token user; only before start() (the token file is read once)."""
        user = User(name, secrets.token_urlsafe(32), tuple(groups))
        self.users[name] = user
        return user

    def write_kubeconfig(self, user: str, token: str | None = None, namespace: str = "default",
                         cert: pki.KeyPair | None = None) -> Path:  # fmt: skip
        path = self.kubeconfig_path(user)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        credentials = ({"token": token} if token else
                       {"client-certificate": str(cert.cert), "client-key": str(cert.key)} if cert else {})  # fmt: skip
        path.write_text(yaml.safe_dump(kubeconfig(self.server, self.ca_path, user, credentials, namespace)))
        return path

    def add_node(
        self, name: str = "streamforge-worker-1", timeout: float = 60, container_start_seconds: float = 0.0
    ) -> Path:
        """Start a process-backed node (streamforge.stack.kube.node) as `system:node:<name>`,
        with a client certificate, its kubelet serving certificate and a free kubelet port;
        returns once the Node is Ready. Stopped with the control plane."""
        node_dir = self.home / "nodes" / name
        identity = pki.issue(self.ca, node_dir, "client", common_name=f"system:node:{name}",
                             organizations=("system:nodes",))  # fmt: skip
        serving = pki.issue(self.ca, node_dir, "kubelet", common_name=name, hosts=("127.0.0.1", name), server=True)
        config_file = self.write_kubeconfig(f"system:node:{name}", cert=identity)
        (port,) = free_ports(1)
        command = [sys.executable, "-m", "streamforge.stack.kube.node", f"--kubeconfig={config_file}",
                   f"--name={name}", f"--port={port}", f"--cert={serving.cert}", f"--key={serving.key}",
                   f"--ca={self.ca_path}", f"--workdir={node_dir}",
                   f"--container-start-seconds={container_start_seconds}"]  # fmt: skip
        self._spawn(f"node-{name}", command, executable=False)
        self._wait_node_ready(name, time.monotonic() + timeout)
        return node_dir

    def service_account_kubeconfig(self, namespace: str, name: str, hours: int = 24) -> Path:
        """A kubeconfig that authenticates as ServiceAccount `namespace/name` with a bound token
        from the TokenRequest API (what a projected SA token volume holds in a real pod)."""
        from kubernetes import client

        with self.api_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=hours * 3600)
            )
            token = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
        user = f"system:serviceaccount:{namespace}:{name}"
        return self.write_kubeconfig(user, token.status.token, namespace)

    def api_client(self, config_file: Path | None = None) -> Any:
        """A `kubernetes.client.ApiClient` (admin unless `config_file`); use it as a context manager."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(config_file or self.admin_kubeconfig))

    # --- tools ------------------------------------------------------------------------------

    def kubectl(self, *args: str, kubeconfig_file: Path | None = None, input: str | None = None,
                check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        cmd = [self.tool("kubectl"), f"--kubeconfig={kubeconfig_file or self.admin_kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubeHarnessError(f"kubectl {' '.join(args)} -> exit {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(self.home / "helm" / "cache"),
               "HELM_CONFIG_HOME": str(self.home / "helm" / "config"),
               "HELM_DATA_HOME": str(self.home / "helm" / "data"),
               "KUBECONFIG": str(self.admin_kubeconfig)}  # fmt: skip
        proc = subprocess.run([self.tool("helm"), *args], capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise KubeHarnessError(f"helm {' '.join(args)} -> exit {proc.returncode}:\n{proc.stderr}")
        return proc

    def info(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "ca": str(self.ca_path),
            "bin_dir": str(self.bin_dir),
            "home": str(self.home),
            "etcd": f"http://127.0.0.1:{self.etcd_port}",
        }

    # --- internals --------------------------------------------------------------------------

    def _write_pki(self) -> None:
        self.ca = pki.new_ca(self.pki_dir)
        self.serving = pki.issue(self.ca, self.pki_dir, "apiserver", common_name="kube-apiserver", server=True,
                                 hosts=("127.0.0.1", "localhost", "10.96.0.1", "kubernetes",
                                        "kubernetes.default", "kubernetes.default.svc"))  # fmt: skip
        # The API server's identity towards kubelets (logs): a client certificate of our CA.
        self.kubelet_client = pki.issue(self.ca, self.pki_dir, "apiserver-kubelet-client",
                                        common_name="kube-apiserver-kubelet-client",
                                        organizations=("system:masters",))  # fmt: skip
        self.sa_keys = pki.service_account_keys(self.pki_dir)
        for name, groups in (
            ("admin", ("system:masters",)),
            ("system:kube-scheduler", ()),
            ("system:kube-controller-manager", ("system:masters",)),  # its bootstrap role assumes per-controller SAs
        ):
            if name not in self.users:
                self.add_user(name, groups)
        self._write_token_file()
        for user in self.users.values():
            self.write_kubeconfig(user.name, token=user.token)

    def _write_token_file(self) -> None:
        path = self.pki_dir / "tokens.csv"
        path.touch(mode=0o600)
        path.write_text("".join(f'{u.token},{u.name},{u.name},"{",".join(u.groups)}"\n' for u in self.users.values()))

    def _etcd_args(self) -> list[str]:
        data = self.home / "etcd"
        shutil.rmtree(data, ignore_errors=True)  # fresh per start: no stale leases or revisions
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            f"--data-dir={data}",
            "--name=streamforge",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=streamforge={peer}",
            "--log-level=warn",
            "--unsafe-no-fsync",  # throw-away test data: fsync only slows the loaded CI machine
        ]

    def _apiserver_args(self) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.pki_dir}",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--client-ca-file={self.ca_path}",
            f"--token-auth-file={self.pki_dir / 'tokens.csv'}",
            f"--service-account-key-file={self.sa_keys.cert}",
            f"--service-account-signing-key-file={self.sa_keys.key}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--disable-admission-plugins=TaintNodesByCondition",
            "--enable-priority-and-fairness=false",
            f"--kubelet-certificate-authority={self.ca_path}",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig_path('system:kube-controller-manager')}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={self.sa_keys.key}",
            f"--root-ca-file={self.ca_path}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--secure-port=0",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig_path('system:kube-scheduler')}",
            "--leader-elect=false",
            "--secure-port=0",
        ]

    def _spawn(self, name: str, args: list[str], executable: bool = True) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.home / "logs" / f"{name}.log", "ab") as log:
            self._procs[name] = subprocess.Popen(
                [self.tool(name), *args] if executable else args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise KubeHarnessError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def _wait_ready(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.users['admin'].token}"}
        verify = ssl.create_default_context(cafile=str(self.ca_path))
        last: object = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(f"{self.server}/readyz", headers=headers, verify=verify, timeout=5)
                if response.status_code == 200:
                    return
                last = response.text[-500:]
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.3)
        raise KubeHarnessError(f"kube-apiserver not ready: {last}\n{self.log_tail('kube-apiserver')}")

    def _wait_node_ready(self, name: str, deadline: float) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(ApiException):
                    node = core.read_node(name)
                    if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
                        return
                time.sleep(0.3)
        raise KubeHarnessError(f"node {name} not Ready:\n{self.log_tail('node-' + name)}")

    def _wait_default_service_account(self, deadline: float) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    core.read_namespaced_service_account("default", "default")
                    return
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                time.sleep(0.3)
        raise KubeHarnessError("the controller-manager created no `default` ServiceAccount:\n"
                               + self.log_tail("kube-controller-manager"))  # fmt: skip
