"""One redaction registry per site: a secret registered for one job is hidden everywhere the site writes.

Driven through the launcher (the job path that registers the job's credentials) with the scripted
cluster of test_launcher: a server error that echoes a credential must not carry it into the site's
journal, the job's journal, or the KubectlError the launcher raises and logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.redact import Redactor
from tests.support.fake_runner import RunnerCall, ScriptedRunner
from tests.unit.test_launcher import JOB, SIGNATURE, TOKEN, FakeCluster, job_meta, make_ctx, make_launcher
from tests.unit.test_launcher import site as site

ECHOED = f'Error from server (Invalid): Secret "cred" is invalid: data[NVFLARE_JOB_TOKEN]: Invalid value: "{TOKEN}"'


def test_a_job_credential_is_hidden_in_the_site_journal_the_job_journal_and_the_error(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = FakeCluster()
    # the one apply that carries the job's credential Secret (with the startup kit's and the pod)
    cluster.fail = lambda args: CommandResult((), 1, "", ECHOED) if args[0] == "apply" else None
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))

    assert handle.poll() == JobReturnCode.EXCEPTION
    logged = next(r.getMessage() for r in caplog.records if "failed to launch job" in r.getMessage())
    assert "Invalid value" in logged and "***" in logged
    site_journal = site / "kubectl-launcher"
    job_journal = site / JOB / "kubectl-launcher"
    for folder in (site_journal, job_journal):
        for name in ("journal.sh", "journal.jsonl"):
            text = (folder / name).read_text()
            assert "Invalid value" in text, (folder, name)  # the failure was journaled, masked
            assert TOKEN not in text and SIGNATURE not in text, (folder, name)
    assert TOKEN not in caplog.text


class _Echo(ScriptedRunner):
    """Every command fails with a message that quotes the secret."""

    def answer(self, call: RunnerCall) -> CommandResult:
        return CommandResult(call.argv, 1, "", f"Error from server (Forbidden): token {TOKEN} refused")


def test_a_secret_registered_through_a_job_copy_is_hidden_by_the_site_and_every_copy(tmp_path: Path) -> None:
    site_journal = Journal(os.path.join(tmp_path, "site"))
    first, second = Journal(os.path.join(tmp_path, "job1")), Journal(os.path.join(tmp_path, "job2"))
    kubectl = Kubectl(runner=_Echo(), journal=site_journal, cache_dir=str(tmp_path / "cache"), retries=0)
    kubectl.for_job(first).redact(TOKEN)
    for copy in (kubectl, kubectl.for_job(second)):
        with pytest.raises(KubectlError) as raised:
            copy.run(["get", "secret", "s"])
        assert TOKEN not in str(raised.value)
        assert TOKEN not in copy.describe(("kubectl", "--token", TOKEN, TOKEN))
    for journal in (site_journal, second):
        text = Path(journal.sh_path).read_text() + Path(journal.jsonl_path).read_text()
        assert "refused" in text and TOKEN not in text


def test_a_value_that_is_a_public_identifier_is_not_registered_as_a_secret() -> None:
    # NVFlare's server uses the job id as the job's token: masking it would break the job's journal lines.
    redactor = Redactor()
    job_id = "5d1c0f7e-aaaa-bbbb-cccc-000000000001"
    redactor.declare_public(job_id, f"j{job_id[1:]}-server-b3eacd33")
    redactor.add(job_id)
    redactor.add("a-real-token-0042")
    assert redactor.text(f"get pod j{job_id[1:]}-server-b3eacd33 -n {job_id}") == (
        f"get pod j{job_id[1:]}-server-b3eacd33 -n {job_id}"
    )
    assert redactor.text("token a-real-token-0042") == "token ***"


def test_declaring_an_identifier_public_drops_a_secret_registered_before_it() -> None:
    redactor = Redactor()
    redactor.add("job-0123456789")
    redactor.declare_public("job-0123456789-site-1-f505dccd")
    assert redactor.text("job-0123456789") == "job-0123456789"
