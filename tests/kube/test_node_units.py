"""The process-backed node's pure parts: image -> program, $(VAR) expansion, mount paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streamforge.stack.kube import images
from streamforge.stack.kube.node import _expand, _rebase


@pytest.mark.parametrize(
    ("image", "module"),
    [
        ("ghcr.io/streamforge/loader:0.1.0", "streamforge_workers.loader"),
        ("registry.example/x/arango-candles:1", "streamforge_workers.sink"),
        ("arango-trades@sha256:" + "0" * 64, "streamforge_workers.sink"),
        ("ghcr.io/streamforge/dummy-service:0.1.0", "streamforge_workers.dummy_service"),
    ],
)
def test_an_image_runs_its_dockerfiles_entrypoint(image: str, module: str) -> None:
    resolved = images.resolve(image)
    assert resolved.argv(None, None) == [sys.executable, "-m", module]
    assert resolved.argv(None, ["--x"]) == [sys.executable, "-m", module, "--x"]
    assert resolved.env["PYTHONUNBUFFERED"] == "1" and "PATH" not in resolved.env


def test_a_pod_command_replaces_the_entrypoint() -> None:
    resolved = images.resolve("ghcr.io/streamforge/dummy-service:0.1.0")
    assert resolved.argv(["python", "-m", "other"], ["--a"]) == [sys.executable, "-m", "other", "--a"]


def test_an_unknown_image_cannot_be_pulled() -> None:
    with pytest.raises(images.ImageNotFound, match="no image 'nginx'"):
        images.resolve("docker.io/library/nginx:1.27")


def test_var_expansion_follows_kubernetes() -> None:
    env = {"A": "1"}
    assert _expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_a_path_under_a_mount_moves_with_the_volume(tmp_path: Path) -> None:
    mounts = {"/etc/streamforge/kafka-ca": tmp_path / "ca", "/tmp": tmp_path / "tmp"}  # noqa: S108
    assert _rebase("/etc/streamforge/kafka-ca/ca.crt", mounts) == f"{tmp_path}/ca/ca.crt"
    assert _rebase("/etc/streamforge/kafka-cab", mounts) == "/etc/streamforge/kafka-cab"
    assert _rebase("plain", mounts) == "plain"
