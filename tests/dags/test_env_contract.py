"""The worker env contract has one source: the settings models in contracts/config.py."""

from __future__ import annotations

from streamforge.contracts.config import LoaderSettings, SinkSettings, env_names, per_run_env
from streamforge.orchestration.catalog import Role
from streamforge.orchestration.plan import ROLE_ENV_KEYS
from streamforge.orchestration.runners.local import inherited_env


def test_role_env_is_the_models_per_run_fields() -> None:
    assert set(ROLE_ENV_KEYS[Role.LOADER]) == set(per_run_env(LoaderSettings))
    assert set(ROLE_ENV_KEYS[Role.SINK]) == set(per_run_env(SinkSettings))
    # cluster configuration (ConfigMap/Secret, connections) is never rendered per run
    for keys in ROLE_ENV_KEYS.values():
        assert not {k for k in keys if k.startswith(("KAFKA_BOOTSTRAP", "KAFKA_PASSWORD", "ARANGO_"))}


def test_a_local_worker_inherits_nothing_a_worker_reads() -> None:
    environ = {name: "from-the-airflow-worker" for name in env_names(LoaderSettings, SinkSettings)}
    environ |= {"arango_password": "lower-case too", "AIRFLOW__CORE__FERNET_KEY": "x", "_AIRFLOW_X": "y"}
    environ |= {"PATH": "/usr/bin", "METRICS_HOST": "127.0.0.1", "STREAMFORGE_LOCAL_STATE_DIR": "state"}
    assert inherited_env(environ) == {"PATH": "/usr/bin", "METRICS_HOST": "127.0.0.1",
                                      "STREAMFORGE_LOCAL_STATE_DIR": "state"}  # fmt: skip
