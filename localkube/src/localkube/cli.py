"""`kubectl-launcher local-cluster`: the local Kubernetes double in the foreground, like `kind` or `minikube`
for a machine without containers; SIGTERM or Ctrl-C stops it and every pod process."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from typing import Any

from localkube.scheduler import DEFAULT_CAPACITY, parse_quantity


def parse_capacity(text: str) -> dict[str, str]:
    capacity: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"capacity must look like cpu=2,memory=8Gi (got {part!r})")
        try:
            parse_quantity(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
        capacity[name] = value
    return capacity


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "local-cluster",
        help="run a local one-node Kubernetes double (pods run as local processes)",
        description="Serve a local Kubernetes API on 127.0.0.1 whose pods run as local processes in private mount "
        "namespaces (the host's files stand in for every image). Runs until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig for this cluster")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--version", default="1.32", help="Kubernetes version to report (default 1.32)")
    parser.add_argument(
        "--capacity",
        type=parse_capacity,
        default={},
        help="node capacity, e.g. cpu=2,memory=8Gi,nvidia.com/gpu=0 "
        f"(default {','.join(f'{k}={v}' for k, v in DEFAULT_CAPACITY.items())})",
    )
    parser.add_argument("--hide", action="append", default=[], metavar="PATH", help="host folder pods must not see")
    parser.add_argument("--workdir", default="/", metavar="DIR", help="containers' default working dir (image WORKDIR)")
    parser.add_argument("--pvc-root", default=None, metavar="DIR", help="PVC claimName -> DIR/claimName")
    parser.add_argument("--state-dir", default=None, metavar="DIR", help="the cluster's own files (default: temp)")
    parser.add_argument(
        "--control-plane",
        choices=("double", "real"),
        default="double",
        help="double: our own API server (default); real: kube-apiserver, etcd, kube-scheduler and "
        "kube-controller-manager, built from Go modules on first use (needs Go) and cached per user",
    )
    parser.set_defaults(func=run)
    return parser


def _real_version() -> str:
    from localkube.controlplane.build import pinned_versions

    v = pinned_versions()
    return f"the real control plane: kube-apiserver {v['kubernetes']}, etcd {v['etcd']}"


def run(args: argparse.Namespace) -> int:
    from localkube.cluster import LocalCluster  # aiohttp only when actually serving

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    temp = None if args.state_dir else tempfile.TemporaryDirectory(prefix="localkube-")
    state_dir = args.state_dir or (temp.name if temp else "")
    cluster = LocalCluster(
        state_dir,
        control_plane=args.control_plane,
        version=args.version,
        port=args.port,
        capacity=args.capacity,
        hidden_paths=args.hide,
        image_workdir=args.workdir,
        pvc_root=args.pvc_root,
        kubeconfig_path=args.kubeconfig,
    )
    try:
        try:
            cluster.start()
        except Exception as e:
            print(f"local-cluster: cannot start: {e}", file=sys.stderr)
            return 1
        path = shlex.quote(os.path.abspath(args.kubeconfig))
        what = f"Kubernetes v{args.version}" if args.control_plane == "double" else _real_version()
        print(
            f"local cluster ready at {cluster.url} ({what}); use it with:\n"
            f"  export KUBECONFIG={path}\n"
            "Stop with Ctrl-C or SIGTERM.",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        print("local-cluster: stopping; killing pod processes", file=sys.stderr, flush=True)
        return 0
    finally:
        cluster.stop()
        left = cluster.leftovers()
        if left:
            print("local-cluster: left behind: " + "; ".join(left), file=sys.stderr)
        if temp is not None:
            temp.cleanup()
        for s, handler in previous.items():
            signal.signal(s, handler)
