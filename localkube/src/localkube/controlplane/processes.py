"""The control plane's processes: etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each with
its own log file under the work folder, bound to 127.0.0.1 only, killed with the Python process that started
them (PR_SET_PDEATHSIG) and stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from localkube.controlplane.pki import Pki

_PR_SET_PDEATHSIG = 1
SERVICE_RANGE = "10.0.0.0/24"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    name: str
    argv: tuple[str, ...]
    log_path: str
    popen: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Ports:
    apiserver: int = field(default_factory=free_port)
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)


def kubeconfig(server: str, pki: Pki, stem: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "localkube", "cluster": {"server": server, "certificate-authority": pki.ca}}],
        "users": [{"name": stem, "user": {"client-certificate": pki.cert(stem), "client-key": pki.key(stem)}}],
        "contexts": [{"name": "localkube", "context": {"cluster": "localkube", "user": stem, "namespace": "default"}}],
        "current-context": "localkube",
        "preferences": {},
    }


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
- level: Metadata
"""


def control_plane(
    binaries: Mapping[str, str],
    pki: Pki,
    ports: Ports,
    folder: str,
    kubeconfigs: Mapping[str, str],
    extra_apiserver_args: Sequence[str] = (),
) -> list[Process]:
    """The four processes in start order; `kubeconfigs` maps controller-manager and scheduler to their files."""
    logs = os.path.join(folder, "logs")
    os.makedirs(logs, exist_ok=True)
    etcd_dir = os.path.join(folder, "etcd")
    etcd_client = f"http://127.0.0.1:{ports.etcd_client}"
    etcd_peer = f"http://127.0.0.1:{ports.etcd_peer}"
    audit_policy = os.path.join(folder, "audit-policy.yaml")
    with open(audit_policy, "w") as f:
        f.write(AUDIT_POLICY)
    etcd = (
        binaries["etcd"],
        "--name=localkube",
        f"--data-dir={etcd_dir}",
        f"--listen-client-urls={etcd_client}",
        f"--advertise-client-urls={etcd_client}",
        f"--listen-peer-urls={etcd_peer}",
        f"--initial-advertise-peer-urls={etcd_peer}",
        f"--initial-cluster=localkube={etcd_peer}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync=true",  # a throw-away test store: no fsync makes writes fast
        "--log-level=warn",
    )
    apiserver = (
        binaries["kube-apiserver"],
        f"--etcd-servers={etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={os.path.join(folder, 'apiserver-certs')}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.path('sa.pub')}",
        f"--service-account-signing-key-file={pki.key('sa')}",
        f"--service-cluster-ip-range={SERVICE_RANGE}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={pki.ca}",
        "--kubelet-preferred-address-types=InternalIP",
        # the kubernetes Service's endpoints would be 127.0.0.1, which EndpointSlice validation refuses
        "--endpoint-reconciler-type=none",
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={os.path.join(folder, 'audit.log')}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--profiling=false",
        *extra_apiserver_args,
    )
    kcm = (
        binaries["kube-controller-manager"],
        f"--kubeconfig={kubeconfigs['controller-manager']}",
        "--secure-port=0",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.key('sa')}",
        f"--root-ca-file={pki.ca}",
        f"--cluster-signing-cert-file={pki.ca}",
        f"--cluster-signing-key-file={pki.key('ca')}",
        f"--service-cluster-ip-range={SERVICE_RANGE}",
        "--controllers=*",
    )
    scheduler = (
        binaries["kube-scheduler"],
        f"--kubeconfig={kubeconfigs['scheduler']}",
        "--secure-port=0",
        "--leader-elect=false",
    )
    return [
        Process("etcd", etcd, os.path.join(logs, "etcd.log")),
        Process("kube-apiserver", apiserver, os.path.join(logs, "kube-apiserver.log")),
        Process("kube-controller-manager", kcm, os.path.join(logs, "kube-controller-manager.log")),
        Process("kube-scheduler", scheduler, os.path.join(logs, "kube-scheduler.log")),
    ]
