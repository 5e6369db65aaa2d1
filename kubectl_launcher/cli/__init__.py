"""`kubectl-launcher` (and the kubectl plugin `kubectl nvflare`): the operator's command-line tools.

One module per subcommand; `main.py` builds the parser, `options.py` holds the shared flags and the
CLI's own Kubectl, `output.py` the human and machine output.
"""

from __future__ import annotations

from kubectl_launcher.cli.main import build_parser, main, plugin_main
from kubectl_launcher.cli.replay import _stdin_asker

__all__ = ["_stdin_asker", "build_parser", "main", "plugin_main"]
