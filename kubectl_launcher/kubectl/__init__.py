"""The kubectl seam: the only layer that starts kubectl.

`Kubectl` (client.py) runs one command with our global flags, environment, deadline, journal and
retry policy; runner.py starts the process, stream.py follows long-running ones, stderr.py turns
kubectl's words into typed errors, setup.py checks the binary and kubeconfig, commands.py builds
argv, journal.py records every command. Nothing here imports a layer above it.
"""

from __future__ import annotations

from kubectl_launcher.kubectl.client import Kubectl
from kubectl_launcher.kubectl.runner import CommandResult, Runner, ShRunner, StdinRecord
from kubectl_launcher.kubectl.stream import KubectlStream

__all__ = ["CommandResult", "Kubectl", "KubectlStream", "Runner", "ShRunner", "StdinRecord"]
