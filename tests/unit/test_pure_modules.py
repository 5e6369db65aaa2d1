"""The pure modules stay pure: importing one loads no kubectl runner, no journal, no subprocess library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import kubectl_launcher

PURE = ("names", "manifest", "pod_status", "commands", "plan", "nvflare_args", "transfer_pod", "archive")
#: Modules with side effects (or that start processes): a pure module must not pull them in.
SIDE_EFFECTS = (
    "sh",
    "subprocess",
    "kubectl_launcher.kubectl",
    "kubectl_launcher.journal",
    "kubectl_launcher.handle",
    "kubectl_launcher.launcher",
    "kubectl_launcher.launch_secrets",
    "kubectl_launcher.transfer",
    "kubectl_launcher.cli",
    "kubectl_launcher.localkube",
)
#: NVFlare's package __init__ starts with its whole runtime (subprocess included); plan reads its keys.
LOADED_BY_NVFLARE = {"plan": {"subprocess"}}
#: What a pure module's own source never imports: time comes in as a parameter.
NEVER_IMPORTED = {"sh", "subprocess", "time", "threading", "asyncio"}


def _loaded_by_import(module: str) -> set[str]:
    code = (
        "import json, sys; before = set(sys.modules); "
        f"import kubectl_launcher.{module}; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", PURE)
def test_importing_a_pure_module_in_a_fresh_interpreter_loads_no_side_effect_module(module: str) -> None:
    loaded = _loaded_by_import(module)
    assert f"kubectl_launcher.{module}" in loaded  # the probe did import it
    allowed = LOADED_BY_NVFLARE.get(module, set())
    assert {m for m in loaded if m in SIDE_EFFECTS or m.startswith("kubectl_launcher.localkube")} <= allowed


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_neither_sh_subprocess_time_nor_threads(module: str) -> None:
    source = Path(kubectl_launcher.__file__).with_name(f"{module}.py").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported & NEVER_IMPORTED == set()


def test_the_package_still_offers_the_launcher_and_the_handle_on_first_use() -> None:
    from kubectl_launcher.handle import K8sJobHandle, normalize_pending_timeout
    from kubectl_launcher.launcher import K8sJobLauncher
    from kubectl_launcher.pod_status import normalize_pending_timeout as pure

    assert kubectl_launcher.K8sJobLauncher is K8sJobLauncher
    assert kubectl_launcher.K8sJobHandle is K8sJobHandle
    assert normalize_pending_timeout is pure
    assert "Kubectl" in dir(kubectl_launcher)
    with pytest.raises(AttributeError):
        _ = kubectl_launcher.NoSuchThing  # type: ignore[attr-defined]
