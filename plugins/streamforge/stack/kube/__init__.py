"""A real Kubernetes control plane on one machine without containers (tests, local runs).

control_plane.ControlPlane (etcd, kube-apiserver, controller-manager, scheduler from build.sh's
pinned binaries), node (a process-backed kubelet), images (image -> worker program), deploy
(the project's helm-values/ applied with test values). CLI: python -m streamforge.stack.kube.
"""

from streamforge.stack.kube.control_plane import ControlPlane, KubeHarnessError, ensure_binaries

__all__ = ["ControlPlane", "KubeHarnessError", "ensure_binaries"]
