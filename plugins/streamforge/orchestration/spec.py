"""`WorkerSpec`: one description of a worker task, rendered by either runner.

The run-specific env values are Jinja templates over the `plan` XCom, so both runners (pod or
child process) get exactly the same variables, and the rendered values show in the UI's
"Rendered Template" view. No credential is ever part of a spec's env.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from streamforge.contracts.names import Component
from streamforge.orchestration.catalog import DagSpec, Resources, Role
from streamforge.orchestration.plan import ROLE_ENV_KEYS
from streamforge.orchestration.task_ids import PLAN, worker_task_id


def plan_ref(*path: str) -> str:
    """A Jinja expression reading one value of the plan XCom."""
    keys = "".join(f"[{p!r}]" for p in path)
    return "{{ ti.xcom_pull(task_ids=%r)%s }}" % (PLAN, keys)  # noqa: UP031 - Jinja braces


class SecretRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    secret: str
    key: str


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    task_id: str
    component: Component
    image: str
    module: str
    args: tuple[str, ...]
    env: dict[str, str]
    secret_refs: tuple[SecretRef, ...]
    resources: Resources | None
    pod_name: str
    queue_id: str

    @property
    def command(self) -> tuple[str, ...]:
        return ("python", "-m", self.module, *self.args)


def needs_arango(role: Role) -> bool:
    """Only the sink writes to ArangoDB; the loader never gets its credentials."""
    return role is Role.SINK


def worker_spec(spec: DagSpec, role: Role) -> WorkerSpec:
    settings = spec.settings
    component = settings.component(role, spec.type)
    credentials = settings.kubernetes.credentials
    return WorkerSpec(
        role=role,
        task_id=worker_task_id(role.value),
        component=component,
        image=settings.images[component].ref,
        module=settings.module(role, spec.type),
        args=tuple(settings.args(role)),
        env={key: plan_ref("env", role.value, key) for key in ROLE_ENV_KEYS[role]},
        secret_refs=tuple(
            SecretRef(env=env, secret=credentials.secret, key=key)
            for env, key in credentials.keys.items()
            if needs_arango(role) or not env.startswith("ARANGO_")
        ),
        resources=settings.resources.get(component),
        pod_name=plan_ref("pods", role.value),
        queue_id=plan_ref("queue_id"),
    )
