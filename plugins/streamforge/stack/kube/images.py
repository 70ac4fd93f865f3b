"""Image -> program, for the process-backed node (which pulls no image and starts no container).

The mapping is read from the project's own Dockerfile, so it cannot drift from the images:
an image `<any registry>/<name>:<any tag>` is the build target `<name>` of
`worker_images/Dockerfile`, whose `ENTRYPOINT`/`CMD` (JSON form) and `ENV` lines, its base
stages' included, are what the container would run with. Today:

    ghcr.io/streamforge/loader          python -m streamforge_workers.loader
    ghcr.io/streamforge/arango-candles  python -m streamforge_workers.sink
    ghcr.io/streamforge/arango-trades   python -m streamforge_workers.sink
    ghcr.io/streamforge/dummy-service   python -m streamforge_workers.dummy_service

As in Kubernetes, a pod's `command` replaces the ENTRYPOINT and its `args` replace the CMD.
`python` is this interpreter (the project's venv, where the worker packages are installed).
An image with no target there cannot be "pulled": the pod waits with ErrImagePull.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from streamforge.stack.paths import REPO_ROOT

WORKER_DOCKERFILE = REPO_ROOT / "worker_images" / "Dockerfile"


class ImageNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Image:
    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, command: list[str] | None, args: list[str] | None) -> list[str]:
        """Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD), args replace CMD."""
        argv = list(command) if command else [*self.entrypoint, *(self.cmd if args is None else ())]
        argv += list(args or [])
        if not argv:
            raise ValueError(f"image {self.name} has no ENTRYPOINT/CMD and the pod gives no command")
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        return argv


def image_name(reference: str) -> str:
    """`ghcr.io/streamforge/loader:0.1.0` or `...@sha256:...` -> `loader`."""
    path = reference.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _instruction(text: str, keyword: str) -> str | None:
    """The last `keyword` instruction of a Dockerfile (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(rf"^{keyword}\s+(.+)$", joined, flags=re.M | re.I)
    return found[-1].strip() if found else None


def _exec_form(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(json.loads(value)) if value.startswith("[") else ("/bin/sh", "-c", value)


def _env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in re.findall(r"^ENV\s+(.+)$", joined, flags=re.M):
        for pair in shlex.split(line):
            if "=" in pair:
                key, value = pair.split("=", 1)
                env[key] = value
    return env


def _stages(text: str) -> dict[str, tuple[str, str]]:
    """Build stage name -> (its base, its instructions)."""
    stages = {}
    for block in re.split(r"^FROM\s+", text, flags=re.M)[1:]:
        header, _, body = block.partition("\n")
        words = header.split()
        if len(words) >= 3 and words[1].upper() == "AS":
            stages[words[2]] = (words[0], body)
    return stages


def resolve(reference: str, dockerfile: Path = WORKER_DOCKERFILE) -> Image:
    name = image_name(reference)
    stages = _stages(dockerfile.read_text())
    if name not in stages:
        raise ImageNotFound(f"no image {name!r}: the process-backed node runs only the targets of {dockerfile.name}")
    # The target and the stages it builds on (a builder stage it only copies from is not in the image).
    chain, base = [], name
    while base in stages:
        base, body = stages[base]
        chain.insert(0, body)
    text = "\n".join(chain)
    env = _env(text)
    env.pop("PATH", None)  # the image's venv is ours: keep the node's PATH
    return Image(name, _exec_form(_instruction(text, "ENTRYPOINT")), _exec_form(_instruction(text, "CMD")), env)
