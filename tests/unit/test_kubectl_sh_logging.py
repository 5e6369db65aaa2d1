"""sh's own loggers never write a kubectl command line at INFO (the journal records it, redacted).

NVFlare logs at INFO into each site's log.txt; sh used to log every process it started there, argv included.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from kubectl_launcher.kubectl.runner import ShRunner

MARKER = "--token=should-never-be-logged"


def _run_fake_kubectl(tmp_path: Path) -> None:
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\necho ok\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = ShRunner()(
        [str(fake), "get", "pods", MARKER], stdin=None, env={"PATH": os.defpath}, timeout=10, stdout_path=None
    )
    assert result.returncode == 0 and result.stdout == "ok\n"


def test_sh_stays_quiet_in_an_info_level_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        _run_fake_kubectl(tmp_path)
    assert [r for r in caplog.records if r.name.startswith("sh")] == []


def test_sh_names_kubectl_by_pid_not_argv_when_turned_up_to_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sh_logger = logging.getLogger("sh")
    before = sh_logger.level
    sh_logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            _run_fake_kubectl(tmp_path)
    finally:
        sh_logger.setLevel(before)
    started = [r.getMessage() for r in caplog.records if r.name.startswith("sh")]
    assert started and all(m.startswith("kubectl pid ") for m in started), started
    assert MARKER not in caplog.text and "get pods" not in caplog.text
