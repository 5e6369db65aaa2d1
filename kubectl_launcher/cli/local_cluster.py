"""`local-cluster`: the local Kubernetes API double, implemented by the `localkube` package when installed."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

LOCAL_CLUSTER_MODULE = "localkube.cli"


def _local_cluster_missing(ns: argparse.Namespace) -> int:
    print(
        f"error: `local-cluster` needs {LOCAL_CLUSTER_MODULE} (the local API double), which is not "
        "installed here; from a checkout of kubectl-launcher: pip install ./localkube",
        file=sys.stderr,
    )
    return 2


def add_parser(subparsers: Any, wanted: bool) -> None:
    # Imported only when asked for: the API double pulls in aiohttp, which the launcher never needs.
    if wanted:
        try:
            module = importlib.import_module(LOCAL_CLUSTER_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name is None or not LOCAL_CLUSTER_MODULE.startswith(exc.name):
                raise
        else:
            module.add_parser(subparsers)
            return
    parser = subparsers.add_parser("local-cluster", help="run the local Kubernetes API double", add_help=not wanted)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=_local_cluster_missing)
