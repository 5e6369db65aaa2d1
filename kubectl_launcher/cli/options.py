"""What every cluster subcommand shares: the global flags, exit codes, durations, and the CLI's own Kubectl.

The CLI's commands are journaled like the launcher's, in a journal of their own: ``--journal DIR``, else
``$XDG_STATE_HOME/kubectl-launcher/`` (``~/.local/state/kubectl-launcher/`` when XDG_STATE_HOME is unset),
as ``cli.sh`` and ``cli.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.purpose import SETUP

#: Everything fine / a problem found (doctor) or the thing asked for does not exist / usage or set-up error.
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

JOURNAL_NAME = "cli"
DEFAULT_NAMESPACE = "default"

JOURNAL_HELP = (
    "folder for the CLI's journal of kubectl commands (cli.sh, cli.jsonl); default "
    "$XDG_STATE_HOME/kubectl-launcher, or ~/.local/state/kubectl-launcher"
)


def default_journal_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "kubectl-launcher")


def add_cluster_options(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """--kubeconfig, --context, -n/--namespace (and -A where the command lists), --kubectl, --journal."""
    group = parser.add_argument_group("cluster")
    group.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    group.add_argument("--context", help="the kubeconfig context (default: its current context)")
    group.add_argument(
        "-n", "--namespace", help="the launch namespace (default: the context's namespace, else 'default')"
    )
    if all_namespaces:
        group.add_argument("-A", "--all-namespaces", action="store_true", help="look in every namespace")
    group.add_argument("--kubectl", default="kubectl", help="the kubectl binary (default: kubectl on PATH)")
    group.add_argument("--journal", metavar="DIR", help=JOURNAL_HELP)
    group.add_argument("--request-timeout", type=float, default=30.0, help="seconds per API request (default 30)")


def add_output_option(parser: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    parser.add_argument(
        "-o", "--output", choices=choices, help=f"machine output ({'|'.join(choices)}); default: a table"
    )


def make_kubectl(ns: argparse.Namespace, *, namespace: str | None = None) -> Kubectl:
    """The CLI's Kubectl, journaled in its own folder; the namespace resolved once (flag, context, default)."""
    directory = ns.journal or default_journal_dir()
    journal = Journal(directory, JOURNAL_NAME)
    kubectl = Kubectl(
        ns.kubeconfig,
        ns.context,
        namespace or ns.namespace or DEFAULT_NAMESPACE,
        ns.kubectl,
        request_timeout=ns.request_timeout,
        command_timeout=max(60.0, ns.request_timeout * 2),
        journal=journal,
        cache_dir=os.path.join(directory, "kube-cache"),
        retries=1,
    )
    if namespace is None and not ns.namespace:
        kubectl.namespace = context_namespace(kubectl) or DEFAULT_NAMESPACE
    return kubectl


def context_namespace(kubectl: Kubectl) -> str | None:
    """The current context's namespace from the kubeconfig (offline), or None."""
    result = kubectl.run(
        ["config", "view", "--minify", "--output", "jsonpath={..context.namespace}"], check=False, purpose=SETUP
    )
    value = result.stdout.strip() if result.returncode == 0 else ""
    return value.split()[0] if value else None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '7d' → seconds (argparse type); kubectl's own form for --since."""
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 15m, 2h or 7d")
    return float(found.group(1)) * _UNIT[found.group(2)]


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
