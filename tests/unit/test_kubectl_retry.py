"""The Kubectl seam with a scripted Runner: flags, environment, retries, errors, get_json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Kubectl, StdinRecord
from kubectl_launcher.kubectl.journal import Journal
from tests.support import fake_runner
from tests.support.fake_runner import RunnerCall
from tests.support.journals import recorded_commands

NOT_FOUND = 'Error from server (NotFound): pods "x" not found\n'
UNAVAILABLE = "Error from server (ServiceUnavailable): the server is currently unable to handle the request\n"


@dataclass
class ScriptedRunner(fake_runner.ScriptedRunner):
    """Answers each call with the next scripted (rc, stdout, stderr); fails loudly when the script ends."""

    script: list[tuple[int | None, str, str]]

    @property
    def calls(self) -> list[RunnerCall]:
        return self.received

    def answer(self, call: RunnerCall) -> CommandResult:
        rc, out, err = self.next_scripted(self.script, call)
        return CommandResult(call.argv, rc, out, err, 0.01, 1_700_000_000.0, timed_out=rc is None)


def make(script: list[tuple[int | None, str, str]], **kw: Any) -> tuple[Kubectl, ScriptedRunner, list[float]]:
    runner = ScriptedRunner(list(script))
    sleeps: list[float] = []
    k = Kubectl(
        "/k/config",
        "ctx",
        "ns1",
        "kubectl",
        runner=runner,
        sleep=sleeps.append,
        cache_dir="/c",
        **kw,
    )
    return k, runner, sleeps


def test_global_flags_come_before_the_subcommand() -> None:
    k, runner, _ = make([(0, "", "")], request_timeout=5)
    k.run(["get", "pod", "x"])
    assert runner.calls[0].argv == (
        "kubectl",
        "--kubeconfig",
        "/k/config",
        "--context",
        "ctx",
        "--namespace",
        "ns1",
        "--request-timeout",
        "5s",
        "get",
        "pod",
        "x",
    )


def test_child_environment_is_built_explicitly() -> None:
    k, runner, _ = make([(0, "", "")])
    k.run(["version"])
    env = runner.calls[0].env
    assert env["KUBERC"] == "off"
    assert env["KUBECTL_KUBERC"] == "false"
    assert env["LC_ALL"] == "C"
    assert env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] == "true"
    assert env["KUBECACHEDIR"] == "/c"
    assert env["KUBECONFIG"] == "/k/config"
    assert "HOME" in env and "PATH" in env


def test_default_cache_dir_is_private_and_not_the_users() -> None:
    k = Kubectl(runner=ScriptedRunner([]))
    assert not k.cache_dir.startswith(os.path.expanduser("~/.kube"))
    assert os.path.isdir(k.cache_dir)
    assert os.stat(k.cache_dir).st_mode & 0o077 == 0


def test_transient_failures_of_idempotent_commands_are_retried_with_backoff() -> None:
    k, runner, sleeps = make([(1, "", UNAVAILABLE), (1, "", UNAVAILABLE), (0, "{}", "")])
    result = k.run(["get", "pod", "x"], idempotent=True)
    assert result.returncode == 0
    assert len(runner.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_final_error_says_how_many_attempts_were_made() -> None:
    k, runner, sleeps = make([(1, "", UNAVAILABLE)] * 4, retries=3)
    with pytest.raises(errors.KubectlUnavailable) as caught:
        k.run(["get", "pod", "x"], idempotent=True)
    assert caught.value.attempts == 4
    assert "4 attempts" in str(caught.value)
    assert "the server is currently unable to handle the request" in str(caught.value)
    assert len(sleeps) == 3
    assert len(runner.calls) == 4


def test_non_idempotent_commands_are_not_retried() -> None:
    k, runner, sleeps = make([(1, "", UNAVAILABLE)])
    with pytest.raises(errors.KubectlUnavailable):
        k.run(["create", "-f", "-"], stdin=b"{}")
    assert len(runner.calls) == 1
    assert sleeps == []


def test_permanent_failures_are_not_retried() -> None:
    k, runner, sleeps = make([(1, "", NOT_FOUND)])
    with pytest.raises(errors.KubectlNotFound) as caught:
        k.run(["get", "pod", "x"], idempotent=True)
    assert len(runner.calls) == 1
    assert sleeps == []
    assert caught.value.argv[-3:] == ("get", "pod", "x")
    assert caught.value.returncode == 1
    assert caught.value.reason == "NotFound"
    assert 'pods "x" not found' in str(caught.value)


def test_our_deadline_raises_kubectl_timeout() -> None:
    k, runner, _ = make([(None, "", "")], command_timeout=7)
    with pytest.raises(errors.KubectlTimeout) as caught:
        k.run(["get", "pod", "x"])
    assert runner.calls[0].timeout == 7
    assert "7s" in str(caught.value)


def test_stdin_never_reaches_the_error_message() -> None:
    k, _, _ = make([(1, "", "Error from server (Forbidden): secrets is forbidden\n")])
    with pytest.raises(errors.KubectlForbidden) as caught:
        k.run(["create", "-f", "-"], stdin=b"SUPER-SECRET-KEY-MATERIAL")
    assert "SUPER-SECRET-KEY-MATERIAL" not in str(caught.value)


def test_check_false_returns_the_failed_result() -> None:
    k, _, _ = make([(1, '{"kind":"List","items":[]}', "Error from server (Forbidden): no\n")])
    result = k.run(["get", "pods"], check=False)
    assert result.returncode == 1


def test_get_json_returns_none_for_empty_output() -> None:
    k, _, _ = make([(0, "", "")])
    assert k.get_json(["get", "pod", "x", "--ignore-not-found", "--output", "json"]) is None


def test_get_json_rejects_output_that_is_not_json() -> None:
    k, _, _ = make([(0, "pod/x\n", "")])
    with pytest.raises(errors.ProtocolError, match="not JSON"):
        k.get_json(["get", "pod", "x", "--output", "name"])


def test_get_json_rejects_the_wrong_kind() -> None:
    k, _, _ = make([(0, json.dumps({"kind": "Status"}), "")])
    with pytest.raises(errors.ProtocolError, match="'Pod' was expected"):
        k.get_json(["get", "pod", "x", "--output", "json"], expect_kind="Pod")


def test_get_json_never_trusts_stdout_of_a_failed_command() -> None:
    forbidden = 'Error from server (Forbidden): pods is forbidden: User "u" cannot list resource "pods"\n'
    k, _, _ = make([(1, '{"apiVersion":"v1","items":[],"kind":"List"}', forbidden)])
    with pytest.raises(errors.KubectlForbidden):
        k.get_json(["get", "pods", "--output", "json"])


def test_registered_secrets_are_redacted_from_errors() -> None:
    k, _, _ = make([(1, "", "error: bad token abcdef123456 given\n")])
    k.redact("abcdef123456")
    with pytest.raises(errors.KubectlError) as caught:
        k.run(["get", "pods", "--token=abcdef123456"])
    assert "abcdef123456" not in str(caught.value)
    assert "abcdef123456" not in " ".join(caught.value.argv)


def test_for_job_records_to_both_journals(tmp_path: os.PathLike[str]) -> None:
    launcher_journal = Journal(os.path.join(tmp_path, "launcher"))
    job_journal = Journal(os.path.join(tmp_path, "job"))
    k, _, _ = make([(0, "", ""), (0, "", "")], journal=launcher_journal)
    job = k.for_job(job_journal)
    k.run(["get", "pods"])
    job.run(["get", "pod", "x"], stdin=b"data", stdin_record=StdinRecord("the pod", ("cat", "/m.json")))
    assert [e.argv[-1] for e in recorded_commands(launcher_journal.jsonl_path)] == ["pods", "x"]
    assert [e.argv[-1] for e in recorded_commands(job_journal.jsonl_path)] == ["x"]
    assert job.namespace == k.namespace


def test_every_attempt_is_journaled(tmp_path: os.PathLike[str]) -> None:
    journal = Journal(str(tmp_path))
    k, _, _ = make([(1, "", UNAVAILABLE), (0, "", "")], journal=journal)
    k.run(["get", "pods"], idempotent=True)
    entries = recorded_commands(journal.jsonl_path)
    assert [(e.returncode, e.data["attempt"]) for e in entries] == [(1, 1), (0, 2)]


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(errors.ConfigError):
        Kubectl(retries=-1)


def test_a_note_goes_to_every_journal_with_registered_secrets_hidden(tmp_path: os.PathLike[str]) -> None:
    launcher_journal = Journal(os.path.join(tmp_path, "launcher"))
    job_journal = Journal(os.path.join(tmp_path, "job"))
    k, _, _ = make([], journal=launcher_journal)
    k.redact("hunter2-token")
    k.for_job(job_journal).note("pod kept; token hunter2-token must not show")
    for journal in (launcher_journal, job_journal):
        with open(journal.sh_path) as sh_file:
            text = sh_file.read()
        assert "# note (" in text and "pod kept; token *** must not show" in text
        assert recorded_commands(journal.jsonl_path) == []
