"""Image -> program, for the process-backed node (which pulls no image and starts no container).

The mapping is read from the project's own Dockerfiles, so it cannot drift from the images:
an image `<any registry>/<name>:<any tag>` is `worker_images/<name>/Dockerfile`, whose
`ENTRYPOINT`/`CMD` (JSON form) and `ENV` lines are what the container would run with. Today:

    ghcr.io/streamforge/loader          python -m streamforge_workers.loader
    ghcr.io/streamforge/arango-candles  python -m streamforge_workers.sink
    ghcr.io/streamforge/arango-trades   python -m streamforge_workers.sink
    ghcr.io/streamforge/dummy-service   python -m streamforge_workers.dummy_service

As in Kubernetes, a pod's `command` replaces the ENTRYPOINT and its `args` replace the CMD.
`python` is this interpreter (the project's venv, where the worker packages are installed).
An image with no Dockerfile here cannot be "pulled": the pod waits with ErrImagePull.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from streamforge.stack.paths import REPO_ROOT

IMAGES_DIR = REPO_ROOT / "worker_images"


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


def resolve(reference: str, images_dir: Path = IMAGES_DIR) -> Image:
    name = image_name(reference)
    dockerfile = images_dir / name / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageNotFound(f"no image {name!r}: the process-backed node runs only worker_images/*/Dockerfile")
    # Only the final stage counts (the builder stage's ENV is not in the image).
    text = dockerfile.read_text().split("\nFROM ")[-1]
    env = _env(text)
    env.pop("PATH", None)  # the image's venv is ours: keep the node's PATH
    return Image(name, _exec_form(_instruction(text, "ENTRYPOINT")), _exec_form(_instruction(text, "CMD")), env)
