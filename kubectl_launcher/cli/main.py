"""The parser of `kubectl-launcher` and of the kubectl plugin `kubectl nvflare`: the same subcommands.

kubectl runs a plugin as `kubectl-nvflare ARGS...` (flags after the plugin name: kubectl refuses
flags before it), so the plugin's usage says `kubectl nvflare`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kubectl_launcher.cli import cleanup, doctor, local_cluster, logs, render, replay, status
from kubectl_launcher.cli.options import EXIT_USAGE

PROG = "kubectl-launcher"
PLUGIN_PROG = "kubectl nvflare"
PLUGIN_BINARY = "kubectl-nvflare"


def build_parser(argv: Sequence[str] = (), *, prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="NVFlare jobs as Kubernetes pods, driven by kubectl: the operator's tools.",
        epilog="exit codes: 0 all well; 1 a problem found (doctor) or the thing asked for does not exist; "
        f"2 usage or set-up error. `{prog} COMMAND -h` for each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor.add_parser(subparsers)
    render.add_parser(subparsers)
    status.add_parser(subparsers)
    logs.add_parser(subparsers)
    cleanup.add_terminate_parser(subparsers)
    cleanup.add_cleanup_parser(subparsers)
    replay.add_parser(subparsers)
    first = next((a for a in argv if not a.startswith("-")), None)
    local_cluster.add_parser(subparsers, wanted=first == "local-cluster")
    return parser


def _prog_for(argv0: str) -> str:
    return PLUGIN_PROG if os.path.basename(argv0) == PLUGIN_BINARY else PROG


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args, prog=prog or _prog_for(sys.argv[0] if sys.argv else PROG))
    ns = parser.parse_args(args)
    func = getattr(ns, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(ns)
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def plugin_main(argv: Sequence[str] | None = None) -> int:
    """The `kubectl-nvflare` console script: `kubectl nvflare COMMAND ...`."""
    return main(argv, prog=PLUGIN_PROG)


if __name__ == "__main__":
    sys.exit(main())
