"""Where the POC's job pods run: the local API double started for one deployment, or a cluster behind a kubeconfig.

``scripts/demo`` (``--kubeconfig``/``--image``) and the e2e test (``KUBECTL_LAUNCHER_E2E_*``) open the
same :class:`JobTarget`, so the flow they run is one flow whichever cluster it lands on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubectl_launcher_demo.deployment import DOUBLE_CAPACITY, SITES, K8sLauncherSettings, PocDeployment, free_port

if TYPE_CHECKING:
    from kubectl_launcher.kubectl import Kubectl

#: The e2e test's switch to a real cluster: ``<prefix>KUBECONFIG`` (+ IMAGE, NAMESPACE, PYTHON_PATH,
#: PARENT_HOST), the demo's ``--kubeconfig``/``--image``/... under other names.
ENV_PREFIX = "KUBECTL_LAUNCHER_E2E_"
ENV_FIELDS = ("KUBECONFIG", "IMAGE", "NAMESPACE", "PYTHON_PATH", "PARENT_HOST")
DEFAULT_NAMESPACE = "default"
#: Where python lives in the usual python base images (the demo's --python-path default).
DEFAULT_PYTHON_PATH = "/usr/local/bin/python3"


@dataclass(frozen=True)
class RealCluster:
    """A cluster we do not start: its kubeconfig, the job image and where the pods call their parents back."""

    kubeconfig: str
    image: str
    namespace: str = DEFAULT_NAMESPACE
    python_path: str = DEFAULT_PYTHON_PATH
    parent_host: str | None = None  # None: this machine's outbound address

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> RealCluster | None:
        """The cluster ``<prefix>KUBECONFIG`` names, None when it is unset; ValueError naming what is missing."""
        values = {name: env.get(prefix + name, "").strip() for name in ENV_FIELDS}
        if not values["KUBECONFIG"]:
            stray = [prefix + name for name, value in values.items() if value]
            if stray:
                raise ValueError(f"{', '.join(stray)} set without {prefix}KUBECONFIG (the real cluster's kubeconfig)")
            return None
        if not values["IMAGE"]:
            raise ValueError(
                f"{prefix}KUBECONFIG is set: also set {prefix}IMAGE (a job image with Python, nvflare 2.9 and tar)"
            )
        return cls(
            kubeconfig=values["KUBECONFIG"],
            image=values["IMAGE"],
            namespace=values["NAMESPACE"] or DEFAULT_NAMESPACE,
            python_path=values["PYTHON_PATH"] or DEFAULT_PYTHON_PATH,
            parent_host=values["PARENT_HOST"] or None,
        )

    def describe(self) -> str:
        host = self.parent_host or "this machine's outbound address"
        return (
            f"kubeconfig {self.kubeconfig}, namespace {self.namespace}, image {self.image}, "
            f"python {self.python_path}, parents at {host}"
        )


class JobTarget:
    """The cluster one deployment's job pods go to; :meth:`close` stops or cleans up what :meth:`open` began.

    ``real=None``: the local API double, started under ``workdir``, pods see the host's files except the
    deployment's own folders (they get their workspace through ``kubectl cp``, as on a real cluster) and
    run ``double_image`` with this Python.
    """

    def __init__(self, real: RealCluster | None, *, kubectl: str, workdir: Path, double_image: str) -> None:
        self.real = real
        self.kubectl_bin = kubectl
        self.workdir = workdir
        self.cluster: Any = None  # the LocalCluster when on the double (localkube is imported only then)
        self.kubeconfig = real.kubeconfig if real else ""
        self.namespace = real.namespace if real else DEFAULT_NAMESPACE
        self.image = real.image if real else double_image
        self.python_path = real.python_path if real else sys.executable
        self.parent_host: str | None = None
        self._dep: PocDeployment | None = None

    @property
    def is_real(self) -> bool:
        return self.real is not None

    def open(self, dep: PocDeployment) -> str:
        """Start the double (or take the real cluster as it is); returns the kubeconfig to use."""
        self._dep = dep
        if self.real is None:
            from localkube import LocalCluster

            # LOCALKUBE_CONTROL_PLANE=real: the same job against the real kube-apiserver (tests/e2e on both)
            self.cluster = LocalCluster(
                str(self.workdir),
                hidden_paths=[str(dep.prod_dir)],
                capacity=DOUBLE_CAPACITY,
                control_plane=os.environ.get("LOCALKUBE_CONTROL_PLANE", "double"),
            ).start()
            self.kubeconfig = str(self.cluster.kubeconfig_path)
        return self.kubeconfig

    def settings(self, workspace_transfer: object) -> K8sLauncherSettings:
        """Each site's k8s_launcher arguments for this cluster."""
        return K8sLauncherSettings(
            kubeconfig=self.kubeconfig,
            namespace=self.namespace,
            default_python_path=self.python_path,
            # A real cluster may pull the image first; the double starts pods at once.
            pending_timeout=60 if self.is_real else 20,
            extra_args={"kubectl": self.kubectl_bin, "workspace_transfer": workspace_transfer},
        )

    def configure(self, dep: PocDeployment, workspace_transfer: object) -> None:
        """Make every site launch its jobs on this cluster (and, on a real one, reachable parents)."""
        dep.use_k8s_launcher(self.settings(workspace_transfer))
        if self.real is None:
            return  # the double's pods share the host network: POC's 127.0.0.1 listeners work as they are
        from kubectl_launcher_demo.report import default_parent_host

        # Job pods call their parent's internal listener, which POC binds to 127.0.0.1: no pod of a real
        # cluster can reach that, so each parent listens on a fixed port of a routable address instead.
        self.parent_host = self.real.parent_host or default_parent_host()
        for site in SITES:
            dep.set_internal_listener(self.parent_host, free_port(), site)

    def client(self, *, streams: bool = False) -> Kubectl:
        """A Kubectl on this cluster and namespace; ``streams``: for watches and ``logs -f`` (no request timeout)."""
        from kubectl_launcher.kubectl import Kubectl

        if streams:
            return Kubectl(self.kubeconfig, namespace=self.namespace, kubectl=self.kubectl_bin, request_timeout=0)
        return Kubectl(self.kubeconfig, namespace=self.namespace, kubectl=self.kubectl_bin)

    def close(self) -> list[str]:
        """Stop the double, or delete what a run left labelled on the real cluster; lines worth showing."""
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.stop()
            return []
        if self.real is not None and self._dep is not None:
            from kubectl_launcher_demo.report import delete_leftover_pods

            self._dep = None
            return delete_leftover_pods(self.kubeconfig, self.namespace, self.kubectl_bin)
        return []


__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_PYTHON_PATH", "ENV_FIELDS", "ENV_PREFIX", "JobTarget", "RealCluster"]
