"""A real single-node Apache Kafka broker (KRaft) for the tests and the local demo.

The broker runs from the jars of the pinned release, resolved once by Maven into a cache outside
git (see kafka_pom.xml), as a child JVM in its own process group and a throw-away run dir:

* PLAINTEXT listener: most tests, and inter-broker traffic;
* SASL_SSL listener with SCRAM-SHA-512: the production path. TLS material (a CA and a broker
  certificate for 127.0.0.1/localhost) is generated at start; clients verify with `ca_path`;
* CONTROLLER listener: KRaft quorum (this node alone).

Every listener binds 127.0.0.1 on a free port.

    python -m streamforge.stack.kafka up       # prints connection info as JSON, runs until Ctrl-C
    python -m streamforge.stack.kafka resolve  # only fetches the jars (e.g. to warm a CI cache)
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streamforge.stack.paths import REPO_ROOT

KAFKA_VERSION = "4.2.0"
POM_PATH = Path(__file__).with_name("kafka_pom.xml")
CONTROL_TOPICS = ("queue-control", "queue-events")
SCRAM_MECHANISM = "SCRAM-SHA-512"
DEFAULT_SCRAM_USER = "streamforge"

Protocol = Literal["PLAINTEXT", "SASL_SSL"]

# The machine has 2 cores shared with Airflow and a test broker holds little data: a small heap,
# the serial collector and the C1 JIT only (C2 compiling Kafka's startup path costs ~2 CPU-s;
# steady throughput is ample for tests). Override with STREAMFORGE_KAFKA_HEAP_OPTS / ..._JVM_OPTS,
# e.g. JVM_OPTS without -XX:TieredStopAtLevel=1 for a benchmark.
DEFAULT_HEAP_OPTS = ("-Xms128m", "-Xmx512m")
DEFAULT_JVM_OPTS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")


_START_ATTEMPTS = 3
# Configuration keys spelled with '_' that client_config(**overrides) must not dot: the
# confluent-kafka Python keys and librdkafka's one underscored property, log_level.
_UNDOTTED_KEYS = frozenset(
    {"error_cb", "stats_cb", "throttle_cb", "oauth_cb", "on_delivery", "on_commit", "logger", "log_level"}
)


class KafkaHarnessError(RuntimeError):
    """The broker could not be resolved, formatted, started or reached."""


# --------------------------------------------------------------------------------------------
# Jars


def cache_dir() -> Path:
    """Root of the harness caches: $STREAMFORGE_CACHE_DIR or <repo>/.cache (gitignored)."""
    override = os.environ.get("STREAMFORGE_CACHE_DIR")
    return Path(override).expanduser().resolve() if override else REPO_ROOT / ".cache"


def default_libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / f"kafka-{version}" / "libs"


_COMPLETE_MARKER = ".complete"


def ensure_jars(libs: Path | None = None) -> Path:
    """Resolve the broker jars with Maven unless a complete copy is already in `libs`.

    Maven copies into a sibling temp dir that is renamed into place, under a file lock, so an
    interrupted download or two concurrent sessions never leave a half-filled libs dir.
    """
    libs = libs or default_libs_dir()
    if (libs / _COMPLETE_MARKER).is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaHarnessError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _COMPLETE_MARKER).is_file():  # another process finished while we waited
            return libs
        staging = Path(tempfile.mkdtemp(prefix=".libs-", dir=libs.parent))
        try:
            cmd = [
                mvn,
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM_PATH),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise KafkaHarnessError(
                    f"mvn could not resolve the Kafka {KAFKA_VERSION} jars (exit {proc.returncode}):\n"
                    + _tail(proc.stdout + proc.stderr, 40)
                )
            jars = sorted(p.name for p in staging.glob("*.jar"))
            if not any(re.fullmatch(r"kafka_2\.13-.+\.jar", j) for j in jars):
                raise KafkaHarnessError(f"mvn finished but no kafka_2.13 jar is in {staging}")
            staging.chmod(0o755)  # mkdtemp made it private
            (staging / _COMPLETE_MARKER).write_text("\n".join(jars) + "\n")
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


def jar_version(libs: Path) -> str:
    """The Kafka version built into kafka-clients (kafka/kafka-version.properties), not its file name."""
    jars = sorted(libs.glob("kafka-clients-*.jar"))
    if len(jars) != 1:
        raise KafkaHarnessError(f"expected one kafka-clients jar in {libs}, found {[j.name for j in jars]}")
    with zipfile.ZipFile(jars[0]) as jar:
        text = jar.read("kafka/kafka-version.properties").decode()
    match = re.search(r"^version=(\S+)", text, re.M)
    if not match:
        raise KafkaHarnessError(f"no version= line in {jars[0].name}!kafka/kafka-version.properties")
    return match.group(1)


# --------------------------------------------------------------------------------------------
# TLS material


@dataclass(frozen=True)
class CertificateAuthority:
    cert_path: Path
    key_path: Path


def write_ca(directory: Path, common_name: str = "StreamForge test CA") -> CertificateAuthority:
    """A fresh self-signed CA (EC P-256: generated in a millisecond, accepted by Java and OpenSSL)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {secrets.token_hex(4)}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _pkcs8(key))
    return CertificateAuthority(cert_path, key_path)


def write_broker_keystore(directory: Path, ca: CertificateAuthority) -> Path:
    """A PEM keystore (key + chain) for 127.0.0.1/localhost signed by `ca`; Kafka reads it as-is."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    path = directory / "broker-keystore.pem"
    # Unencrypted PKCS#8 key: Kafka's PEM keystore accepts it when ssl.key.password is unset.
    _write_private(path, _pkcs8(key) + chain)
    return path


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _kept_secret(path: Path, new: str) -> str:
    """The secret stored at `path`, or `new` after storing it there (mode 0600)."""
    if path.exists():
        return path.read_text().strip()
    _write_private(path, new.encode())
    return new


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# --------------------------------------------------------------------------------------------
# Helpers


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open together so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _cluster_id() -> str:
    # Kafka's Uuid string form: URL-safe base64 of 16 random bytes, unpadded; one starting
    # with '-' would be taken for an option by the format tool.
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise KafkaHarnessError("java is not on PATH (and JAVA_HOME is unset): Kafka needs Java 17+")
    return found


def _env_opts(name: str, default: Iterable[str]) -> list[str]:
    value = os.environ.get(name)
    return value.split() if value else list(default)


_LOG4J2_PROPERTIES = """\
# Generated by plugins/streamforge/stack/kafka.py. Everything goes to stdout, which the harness sends to the
# run dir's broker.log next to the JVM's own messages (crashes, bind errors).
status = warn
# Kafka's own shutdown hook logs until the JVM exits; log4j's would stop the appender first.
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
# Per-request lines and the ~350-line config dumps (4 per start) would drown the useful
# lines; the harness copies server.properties into the log instead.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


# --------------------------------------------------------------------------------------------
# The broker


class KafkaBroker:
    """One KRaft broker+controller process; use as a context manager or call start()/stop().

    Attributes are valid once start() has returned.
    """

    def __init__(
        self,
        *,
        libs: Path | None = None,
        scram_user: str = DEFAULT_SCRAM_USER,
        start_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        keep_run_dir: bool | None = None,
        extra_properties: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """`data_dir`: keep topics, offsets and the SCRAM user there across restarts (else a temp dir)."""
        self.libs = libs or default_libs_dir()
        self.data_dir = data_dir
        self.scram_user = scram_user
        self.scram_password = secrets.token_urlsafe(18)  # URL-safe: no ',', ']' or '=' for --add-scram
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        if keep_run_dir is None:
            keep_run_dir = os.environ.get("STREAMFORGE_KAFKA_KEEP_RUN_DIR", "") not in ("", "0")
        self.keep_run_dir = keep_run_dir
        self.extra_properties = dict(extra_properties or {})

        self.version = ""
        self.run_dir = Path()
        self.log_path = Path()
        self.ca_path = Path()
        self.start_seconds = 0.0
        self._ports: dict[str, int] = {}
        self._cds = _ClassDataSharing(self.libs.parent / "cds")
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._served = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._process is not None:
            raise KafkaHarnessError("broker already started")
        began = time.monotonic()
        ensure_jars(self.libs)
        self.version = jar_version(self.libs)
        if self.data_dir is not None:
            self.run_dir = self.data_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.scram_password = _kept_secret(self.run_dir / "scram-password", self.scram_password)
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="streamforge-kafka-"))
        formatted = (self.run_dir / "data" / "meta.properties").exists()
        self.log_path = self.run_dir / "broker.log"
        atexit.register(self.stop)
        try:
            ca = write_ca(self.run_dir / "tls")
            self.ca_path = ca.cert_path
            keystore = write_broker_keystore(self.run_dir / "tls", ca)
            (self.run_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
            config = self.run_dir / "server.properties"
            self._log_file = open(self.log_path, "ab")  # closed in stop()
            for attempt in range(1, _START_ATTEMPTS + 1):
                self._ports = dict(zip(("PLAINTEXT", "SASL_SSL", "CONTROLLER"), free_ports(3), strict=True))
                config.write_text(self._server_properties(keystore))
                if attempt == 1 and not formatted:  # the ports are not part of the formatted storage
                    self._format_storage(config)
                self._spawn(config)
                try:
                    self._wait_ready(began + self.start_timeout)
                    self._served = True
                    break
                except KafkaHarnessError:
                    # Another process took a port between free_ports() and the JVM's bind.
                    if attempt == _START_ATTEMPTS or "Address already in use" not in self.log_tail(200):
                        raise
                    self._log_line(f"a port was taken meanwhile; retrying with new ports ({attempt})")
                    self._reap()
            self._warm_group_coordinator(deadline=time.monotonic() + 10)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after stop_timeout, then delete the run dir."""
        atexit.unregister(self.stop)
        self._reap()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.run_dir != Path() and self.run_dir.exists() and not self.keep_run_dir and self.data_dir is None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            clean = _kill_group(process, self.stop_timeout)
            # Only a broker that got through its start has a class list worth archiving.
            self._cds.adopt("kafka.Kafka", dumped=clean and self._served)
            self._served = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- connection info ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self._ports['PLAINTEXT']}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self._ports['SASL_SSL']}"

    def client_config(self, protocol: Protocol = "PLAINTEXT", **overrides: Any) -> dict[str, Any]:
        """confluent-kafka settings for one listener.

        `overrides` are librdkafka properties with '_' for '.' (group_id=..., linger_ms=...);
        error_cb, on_delivery, log_level... are kept as spelled.
        """
        if protocol == "PLAINTEXT":
            config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "security.protocol": "PLAINTEXT"}
        elif protocol == "SASL_SSL":
            config = {
                "bootstrap.servers": self.sasl_ssl_bootstrap,
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": self.scram_user,
                "sasl.password": self.scram_password,
                "ssl.ca.location": str(self.ca_path),
                "ssl.endpoint.identification.algorithm": "https",  # librdkafka's default, made explicit
            }
        else:
            raise ValueError(f"unknown protocol {protocol!r}: PLAINTEXT or SASL_SSL")
        for key, value in overrides.items():
            config[key if key in _UNDOTTED_KEYS else key.replace("_", ".")] = value
        return config

    def env(self, protocol: Protocol = "PLAINTEXT") -> dict[str, str]:
        """The KAFKA_* variables a worker reads (plugins/streamforge/contracts/config.py KafkaEnv)."""
        if protocol == "PLAINTEXT":
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
        if protocol == "SASL_SSL":
            return {
                "KAFKA_BOOTSTRAP_SERVERS": self.sasl_ssl_bootstrap,
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
                "KAFKA_USER": self.scram_user,
                "KAFKA_PASSWORD": self.scram_password,
                "KAFKA_CA_PATH": str(self.ca_path),
            }
        raise ValueError(f"unknown protocol {protocol!r}: PLAINTEXT or SASL_SSL")

    def info(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "bootstrap": self.bootstrap,
            "sasl_ssl_bootstrap": self.sasl_ssl_bootstrap,
            "sasl_mechanism": SCRAM_MECHANISM,
            "scram_user": self.scram_user,
            "scram_password": self.scram_password,
            "ca_path": str(self.ca_path),
            "log_path": str(self.log_path),
            "run_dir": str(self.run_dir),
            "pid": self.pid,
            "start_seconds": round(self.start_seconds, 2),
            "env": {"PLAINTEXT": self.env("PLAINTEXT"), "SASL_SSL": self.env("SASL_SSL")},
        }

    # -- helpers for tests -------------------------------------------------------------------

    def admin(self, protocol: Protocol = "PLAINTEXT") -> AdminClient:
        return AdminClient(self.client_config(protocol))

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        *,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> list[str]:
        """Create topics (replication 1) and wait until the broker serves their metadata."""
        names = list(names)
        admin = AdminClient(self._quiet_config())
        new = [NewTopic(n, num_partitions=partitions, replication_factor=1, config=dict(config or {})) for n in names]
        for name, future in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                if not (exist_ok and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
                    raise KafkaHarnessError(f"cannot create topic {name!r}: {exc}") from exc
        # create_topics returns once the controller committed them; producing right away could
        # still meet UNKNOWN_TOPIC_OR_PARTITION until the broker has applied the metadata.
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            topics = admin.list_topics(timeout=max(deadline - time.monotonic(), 1)).topics
            pending = {
                n
                for n in pending
                if n not in topics
                or topics[n].error is not None
                or any(p.leader < 0 for p in topics[n].partitions.values())
            }
            if pending and time.monotonic() > deadline:
                raise KafkaHarnessError(f"topics {sorted(pending)} have no leader after {timeout}s")
            if pending:
                time.sleep(0.05)
        return names

    def log_tail(self, lines: int = 60) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError as exc:
            return f"(no broker log: {exc})"

    def logged_version(self) -> str | None:
        """The version the running broker printed ("Kafka version: X" from AppInfoParser)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        match = re.search(r"Kafka version: (\S+)", text)
        return match.group(1) if match else None

    # -- internals ---------------------------------------------------------------------------

    def _server_properties(self, keystore: Path) -> str:
        p = self._ports
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{p['CONTROLLER']}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{p['PLAINTEXT']},SASL_SSL://127.0.0.1:{p['SASL_SSL']},"
                f"CONTROLLER://127.0.0.1:{p['CONTROLLER']}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p['PLAINTEXT']},SASL_SSL://127.0.0.1:{p['SASL_SSL']}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.run_dir / "data"),
            # SCRAM users live in the KRaft metadata, written by the format tool (--add-scram).
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.client.auth": "none",
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            # One partition instead of 50: the first consumer group then waits for 1 leader, not 50.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Fewer threads and a small cleaner buffer (128 MiB by default) for a 512 MiB heap.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "2",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        props.update(self.extra_properties)
        return "".join(f"{key}={_escape_property(value)}\n" for key, value in props.items())

    def _java_cmd(self, opts: Iterable[str], main: str, *args: str) -> list[str]:
        return [
            _java(),
            *opts,
            *self._cds.options(main),
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.run_dir}",
            "-cp",
            str(self.libs / "*"),
            main,
            *args,
        ]

    def _format_storage(self, config: Path) -> None:
        cmd = self._java_cmd(
            TOOL_JVM_OPTS,
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(config),
            "--cluster-id",
            _cluster_id(),
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={self.scram_user},password={self.scram_password}]",
        )
        self._log_line(f"{config.name}:\n{config.read_text()}")
        self._log_line("formatting storage: kafka.tools.StorageTool format")
        proc = subprocess.run(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, check=False, timeout=120)
        self._cds.adopt("kafka.tools.StorageTool", dumped=proc.returncode == 0)
        if proc.returncode != 0:
            raise KafkaHarnessError(
                f"kafka-storage format failed (exit {proc.returncode}); broker log tail:\n{self.log_tail(40)}"
            )

    def _spawn(self, config: Path) -> None:
        opts = [
            *_env_opts("STREAMFORGE_KAFKA_HEAP_OPTS", DEFAULT_HEAP_OPTS),
            *_env_opts("STREAMFORGE_KAFKA_JVM_OPTS", DEFAULT_JVM_OPTS),
        ]
        cmd = self._java_cmd(opts, "kafka.Kafka", str(config))
        setpriv = shutil.which("setpriv")
        # If this process dies without running atexit (SIGKILL, os._exit), the kernel kills the
        # broker too. PDEATHSIG fires when the *thread* that forked exits, so only from main.
        if setpriv and threading.current_thread() is threading.main_thread():
            cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
        self._log_line("starting broker: kafka.Kafka " + str(config))
        self._process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.run_dir,
        )

    def _wait_ready(self, deadline: float) -> None:
        # Poll the TCP port first: librdkafka backs off exponentially after refused connections.
        port = self._ports["PLAINTEXT"]
        while True:
            self._check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self._timeout("the PLAINTEXT port never opened")
                time.sleep(0.1)
        # The port is bound before the broker serves requests; list_topics answers once it does.
        admin = AdminClient(self._quiet_config() | {"reconnect.backoff.max.ms": 500})
        while True:
            self._check_alive()
            try:
                admin.list_topics(timeout=min(2.0, max(deadline - time.monotonic(), 0.1)))
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    self._timeout("list_topics got no answer")

    def _warm_group_coordinator(self, deadline: float) -> None:
        """Have the broker create __consumer_offsets now (~0.3 s).

        Otherwise the first consumer group of the session finds no coordinator and librdkafka
        retries only after ~1 s. Best effort: a slow answer just leaves that cost to the tests.
        """
        admin = AdminClient(self._quiet_config())
        while time.monotonic() < deadline:
            future = admin.describe_consumer_groups(["streamforge-harness-warmup"], request_timeout=5)
            try:
                future["streamforge-harness-warmup"].result()
                return  # an unknown group is described as DEAD once its coordinator is up
            except KafkaException:
                time.sleep(0.05)  # COORDINATOR_NOT_AVAILABLE / _LOAD_IN_PROGRESS / NOT_COORDINATOR

    def _quiet_config(self) -> dict[str, Any]:
        # The harness's short-lived admin clients would print INFO notes such as "Purging 1
        # unserved events from background queue" when garbage-collected.
        return self.client_config(log_level=4)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise KafkaHarnessError(
                f"Kafka broker exited with code {self._process.returncode} during start; "
                f"broker log tail:\n{self.log_tail(60)}"
            )

    def _timeout(self, what: str) -> None:
        raise KafkaHarnessError(
            f"Kafka broker not ready after {self.start_timeout:.0f}s ({what}); broker log tail:\n{self.log_tail(60)}"
        )

    def _log_line(self, text: str) -> None:
        assert self._log_file is not None
        self._log_file.write(f"[harness {dt.datetime.now().isoformat(timespec='milliseconds')}] {text}\n".encode())
        self._log_file.flush()


def _escape_property(value: str) -> str:
    # java.util.Properties treats '\' as an escape; paths and JAAS lines need no other escaping.
    return value.replace("\\", "\\\\")


def _kill_group(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Stop the process group; True if the JVM ran its shutdown (no SIGKILL was needed)."""
    clean = True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        clean = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # The leader is gone; make sure nothing else it started outlives it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return clean and process.returncode != -signal.SIGKILL


class _ClassDataSharing:
    """A dynamic AppCDS archive per main class, cached next to the jars.

    Loading Kafka's ~6000 classes is most of a cold start. The first run dumps the loaded classes
    at JVM exit (-XX:ArchiveClassesAtExit); later runs map them (~35% less start CPU). A stale or
    foreign archive (other JDK build, other classpath) is ignored by the JVM, so this only ever
    costs time, never correctness. STREAMFORGE_KAFKA_CDS=0 turns it off.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.enabled = os.environ.get("STREAMFORGE_KAFKA_CDS", "1") != "0"
        self._pending: dict[str, Path] = {}

    def _archive(self, main: str) -> Path:
        java = Path(_java()).resolve()
        build = f"{java}:{java.stat().st_mtime_ns}"  # a JDK upgrade gets its own archive
        return self.directory / f"{main}-{hashlib.sha256(build.encode()).hexdigest()[:12]}.jsa"

    def options(self, main: str) -> list[str]:
        if not self.enabled:
            return []
        archive = self._archive(main)
        # Quiet: dumping warns per skipped class; use/mismatch notes are harmless.
        quiet = "-Xlog:cds=off,cds+dynamic=off"
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", quiet]
        self.directory.mkdir(parents=True, exist_ok=True)
        # Dump beside the target and rename once the JVM exited cleanly: a JVM killed while
        # dumping leaves a partial file that must never be picked up.
        pending = archive.with_name(f".{archive.name}.{os.getpid()}-{secrets.token_hex(3)}")
        self._pending[main] = pending
        return [f"-XX:ArchiveClassesAtExit={pending}", quiet]

    def adopt(self, main: str, *, dumped: bool) -> None:
        pending = self._pending.pop(main, None)
        if pending is None:
            return
        if dumped and pending.is_file() and pending.stat().st_size > 0:
            os.replace(pending, self._archive(main))
        else:
            pending.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# CLI


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the wait like Ctrl-C, so that stop() runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamforge.stack.kafka",
        description=f"A local single-node Apache Kafka {KAFKA_VERSION} (KRaft) with PLAINTEXT and "
        "SASL_SSL/SCRAM-SHA-512 listeners on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a broker, print its connection info as JSON, run until Ctrl-C/SIGTERM")
    up.add_argument(
        "--control-topic-partitions",
        type=int,
        default=1,
        metavar="N",
        help=f"create {', '.join(CONTROL_TOPICS)} with N partitions (0: do not create them; default 1)",
    )
    up.add_argument("--topic", action="append", default=[], metavar="NAME", help="also create this topic (repeatable)")
    up.add_argument("--keep-run-dir", action="store_true", help="do not delete the run dir (logs, data) on exit")
    sub.add_parser("resolve", help=f"only fetch the Kafka {KAFKA_VERSION} jars into the cache and print their dir")
    args = parser.parse_args(argv)

    if args.command == "resolve":
        began = time.monotonic()
        libs = ensure_jars()
        print(
            json.dumps(
                {
                    "libs": str(libs),
                    "version": jar_version(libs),
                    "seconds": round(time.monotonic() - began, 1),
                }
            )
        )
        return 0

    signal.signal(signal.SIGTERM, _interrupt)
    broker = KafkaBroker(keep_run_dir=args.keep_run_dir or None)
    try:
        broker.start()
        if args.control_topic_partitions > 0:
            broker.create_topics(CONTROL_TOPICS, partitions=args.control_topic_partitions)
        if args.topic:
            broker.create_topics(args.topic)
        print(json.dumps(broker.info(), indent=2), flush=True)
        print(f"Apache Kafka {broker.version} is up; Ctrl-C to stop.", file=sys.stderr, flush=True)
        while broker.is_running():
            time.sleep(0.5)
        print(f"broker exited unexpectedly; log tail:\n{broker.log_tail(40)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
