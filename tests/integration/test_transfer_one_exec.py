"""Delivery in one ``kubectl exec -i`` and collection in one ``kubectl exec``, with the real kubectl on the local
API double: the kubectl processes a transfer starts, a stream damaged on the way, an image without sha256sum,
and a job that replaces its own folder by a symlink."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from kubectl_launcher.errors import TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl import CommandResult
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.runner import ShRunner
from kubectl_launcher.transfer import pod_side
from tests.integration.test_transfer import JOB, WMP, Run, _container, _ended, _site
from tests.support.trees import snapshot as _tree

pytestmark = pytest.mark.integration

RESULTS_SCRIPT = 'mkdir -p "$1/$2/results" && echo "model ✓" > "$1/$2/results/model.txt"'


def _purposes(journal: Journal) -> list[str]:
    lines = Path(journal.jsonl_path).read_text(encoding="utf-8").splitlines()
    return [str(json.loads(line)["purpose"]) for line in lines if '"purpose"' in line]


def test_a_transfer_delivers_in_one_kubectl_process_and_collects_in_one(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    journal = Journal(str(tmp_path / "journal"))
    run = Run(local_cluster, kubectl_path, tmp_path, ws, RESULTS_SCRIPT, journal=journal, lease_interval=3)
    run.until(_ended)
    assert run.transfer.delivered and run.transfer.collected
    assert run.transfer.settle(60)  # the release's kubectl has ended (and is journaled), not only its marker
    assert (ws / JOB / "results/model.txt").read_text(encoding="utf-8") == "model ✓\n"
    purposes = _purposes(journal)
    # apply (the test's own), then exactly one process each to deliver and to collect, and the release
    assert (purposes.count("deliver"), purposes.count("collect"), purposes.count("release")) == (1, 1, 1)
    assert set(purposes) <= {"", "deliver", "collect", "release", "lease"}
    delivered = next(line for line in Path(journal.sh_path).read_text().splitlines() if " exec " in line)
    assert delivered.startswith("cat ") and "--stdin" in delivered  # the bundle's file, streamed on stdin


class DamagingRunner:
    """The real runner (and so the real kubectl), but the first delivery stream is damaged on its way."""

    def __init__(self, tmp_path: Path, find: bytes, replace: bytes) -> None:
        self.inner, self.tmp, self.find, self.replace = ShRunner(), tmp_path, find, replace
        self.damaged = 0

    def __call__(self, argv: Sequence[str], *, stdin_file: BinaryIO | None = None, **rest: Any) -> CommandResult:
        if stdin_file is None or self.damaged:
            return self.inner(argv, stdin_file=stdin_file, **rest)
        self.damaged += 1
        data = stdin_file.read()
        assert data.count(self.find) == 1
        damaged = self.tmp / "damaged.tar"
        damaged.write_bytes(data.replace(self.find, self.replace))
        with open(damaged, "rb") as feed:
            return self.inner(argv, stdin_file=feed, **rest)


def test_a_delivery_damaged_on_the_way_is_refused_in_the_pod_and_redone_whole(
    local_cluster: Any, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = _site(tmp_path)
    journal = Journal(str(tmp_path / "journal"))
    runner = DamagingRunner(tmp_path, b'{"name": "transfer"}', b'{"name": "transfex"}')  # same size
    run = Run(local_cluster, kubectl_path, tmp_path, ws, RESULTS_SCRIPT, journal=journal, runner=runner)
    run.until(_ended)
    assert runner.damaged == 1 and run.transfer.delivered and run.transfer.collected
    assert _purposes(journal).count("deliver") == 2
    warning = next(r.getMessage() for r in caplog.records if "could not deliver" in r.getMessage())
    assert "arrived damaged, nothing was placed: sha256 differs" in warning and "meta.json: FAILED" in warning
    assert _container(run.pod(), "main")["terminated"]["exitCode"] == 0


def test_an_image_without_sha256sum_gets_its_workspace_checked_by_entries_and_bytes(
    local_cluster: Any, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tools = tmp_path / "image-bin"
    tools.mkdir()
    for name in ("sh", "tar", "find", "wc", "cat", "rm", "mkdir", "mv", "grep", "head", "sleep", "printf"):
        found = shutil.which(name)
        assert found is not None, name
        (tools / name).symlink_to(found)

    def without_sha256sum(pod: dict[str, Any]) -> None:
        init = pod["spec"]["initContainers"][0]
        init["env"] = [{"name": "PATH", "value": "/opt/image-bin"}]
        init["volumeMounts"].append({"name": "image-bin", "mountPath": "/opt/image-bin", "readOnly": True})
        pod["spec"]["volumes"].append({"name": "image-bin", "hostPath": {"path": str(tools)}})

    caplog.set_level("INFO", logger="kubectl_launcher.transfer")
    ws = _site(tmp_path)
    run = Run(local_cluster, kubectl_path, tmp_path, ws, RESULTS_SCRIPT, tweak=without_sha256sum)
    run.until(_ended)
    assert run.transfer.delivered and run.transfer.collected
    assert any("has no sha256sum" in r.getMessage() for r in caplog.records)


SYMLINKED_JOB = r"""
ws=$1 job=$2
mkdir -p "$ws/another job/results" && echo "another job's" > "$ws/another job/results/not yours.txt"
mkdir "$ws/$job/results" && echo mine > "$ws/$job/results/mine.txt"
mv "$ws/$job" "$ws/moved away" && ln -s "$ws/another job" "$ws/$job"
"""


def test_a_job_that_replaces_its_folder_by_a_symlink_gets_nothing_of_that_folder_back(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    before_job = _tree(ws / JOB)
    journal = Journal(str(tmp_path / "journal"))
    run = Run(local_cluster, kubectl_path, tmp_path, ws, SYMLINKED_JOB, journal=journal)
    with pytest.raises(TransferError) as err:
        run.until(lambda pod: False)
    assert isinstance(err.value.__cause__, UnsafeArchiveError)
    assert f"refusing to collect {WMP}/{JOB}: it is a symlink" in str(err.value)
    assert _purposes(journal).count("collect") == 1  # refused at once, not redone
    after_job = _tree(ws / JOB)
    assert b" cp " in after_job.pop("kubectl-launcher/recover-results.sh")[1]  # type: ignore[operator]
    assert after_job == before_job
    assert not [p for p in ws.rglob("*") if p.name in ("not yours.txt", "mine.txt")]
    assert "running" in _container(run.pod(), pod_side.KEEPER_CONTAINER)  # kept for a human to look at
