"""The kubectl seam: the only layer that starts kubectl.

`Kubectl` (client.py) runs one command with our global flags, environment, deadline, journal,
redaction registry and retry policy; retry.py is that policy, redact.py the registry and its rules,
runner.py starts the process, stream.py follows long-running ones, stderr.py turns kubectl's words
into typed errors, setup.py checks the binary and kubeconfig, commands.py builds argv, purpose.py
names what a command is for, journal.py records every command and replay.py reads a journal back and
re-runs it. Nothing here imports a layer above it; inside, the modules are layered too (see
pyproject.toml, [tool.importlinter]).
"""

from __future__ import annotations

from kubectl_launcher.kubectl.client import Kubectl
from kubectl_launcher.kubectl.retry import RetryPolicy
from kubectl_launcher.kubectl.runner import CommandResult, Runner, ShRunner, StdinRecord
from kubectl_launcher.kubectl.stream import KubectlStream

__all__ = ["CommandResult", "Kubectl", "KubectlStream", "RetryPolicy", "Runner", "ShRunner", "StdinRecord"]
