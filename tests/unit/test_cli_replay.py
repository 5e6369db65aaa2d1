"""`kubectl-launcher replay` with a scripted Runner: dry-run text, stop at differences, step, stdin."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from kubectl_launcher import cli
from kubectl_launcher.kubectl import CommandResult, StdinRecord
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.redact import Redactor
from kubectl_launcher.kubectl.replay import Replayer
from tests.support.fake_runner import RunnerCall, ScriptedRunner
from tests.support.journals import recorded_commands

ENV = {"KUBERC": "off"}
SITE = Redactor()  # the site's registry, as Kubectl hands it to its journals (nothing registered)
POD = {"kind": "Pod", "metadata": {"name": "x", "resourceVersion": "1"}, "status": {"phase": "Running"}}


class FakeRunner(ScriptedRunner):
    """Returns queued results per argv tail; records what ran."""

    def __init__(self, answers: list[tuple[int | None, str, str]], stdout_bytes: bytes = b"") -> None:
        super().__init__()
        self.answers = answers
        self.ran: list[tuple[list[str], bytes | None]] = []
        self.stdout_bytes = stdout_bytes

    def answer(self, call: RunnerCall) -> CommandResult:
        self.ran.append((list(call.argv), call.stdin))
        if call.stdout_path:
            Path(call.stdout_path).write_bytes(self.stdout_bytes)
            return CommandResult(call.argv, 0)
        rc, out, err = self.next_scripted(self.answers, call)
        return CommandResult(call.argv, rc, out, err, 0.1, 0.0)


def write_journal(directory: Path) -> Journal:
    journal = Journal(str(directory))
    journal.record(
        CommandResult(("kubectl", "get", "pod", "x", "-o", "json"), 0, json.dumps(POD)), env=ENV, redactor=SITE
    )
    journal.record(
        CommandResult(("kubectl", "delete", "pod", "y"), 1, "", "Error from server (NotFound): y\n"),
        env=ENV,
        redactor=SITE,
    )
    journal.record(
        CommandResult(("kubectl", "apply", "-f", "-"), 0, "pod/x"),
        stdin=b"SECRET",
        stdin_record=StdinRecord("the secret", ("cat", "/src/secret.json")),
        env=ENV,
        redactor=SITE,
    )
    return journal


def command_lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line and not line.startswith("#")]


def test_dry_run_prints_exactly_the_pasteable_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = write_journal(tmp_path)
    assert cli.main(["replay", journal.sh_path, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == command_lines(journal.sh_path)


def test_dry_run_from_n_starts_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = write_journal(tmp_path)
    assert cli.main(["replay", str(tmp_path), "--dry-run", "--from", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == command_lines(journal.sh_path)[1:]


def test_replay_reports_same_when_results_match(tmp_path: Path) -> None:
    write_journal(tmp_path)
    changed = dict(POD, metadata={"name": "x", "resourceVersion": "77"})
    runner = FakeRunner([(0, json.dumps(changed), ""), (1, "", "NotFound"), (0, "pod/x", "")], b"SECRET")
    out = io.StringIO()
    assert Replayer(runner, out=out).run(recorded_commands(str(tmp_path))) == 0
    assert out.getvalue().count("same") == 3
    # argv lists, and stdin rebuilt by its command
    assert runner.ran[2] == (["cat", "/src/secret.json"], None)
    assert runner.ran[3] == (["kubectl", "apply", "-f", "-"], b"SECRET")


def test_replay_stops_at_the_first_difference_and_shows_both(tmp_path: Path) -> None:
    write_journal(tmp_path)
    failed = dict(POD, status={"phase": "Failed"})
    runner = FakeRunner([(0, json.dumps(failed), "")])
    out = io.StringIO()
    assert Replayer(runner, out=out).run(recorded_commands(str(tmp_path))) == 1
    text = out.getvalue()
    assert "[1] DIFFERENT: output" in text
    assert "phase=Running" in text and "phase=Failed" in text
    assert "recorded" in text and "replay" in text
    assert len(runner.ran) == 1


def test_keep_going_runs_past_differences(tmp_path: Path) -> None:
    write_journal(tmp_path)
    runner = FakeRunner([(1, "", "Error from server (NotFound): x"), (0, "", ""), (0, "pod/x", "")], b"SECRET")
    out = io.StringIO()
    assert Replayer(runner, out=out, keep_going=True).run(recorded_commands(str(tmp_path))) == 1
    assert "[1] DIFFERENT: exit code" in out.getvalue()
    assert "[2] DIFFERENT: exit code" in out.getvalue()
    assert "[3] same" in out.getvalue()


def test_stdin_that_was_not_recorded_is_reported_not_replayable(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    journal.record(CommandResult(("kubectl", "apply", "-f", "-"), 0), stdin=b"x", env=ENV, redactor=SITE)
    out = io.StringIO()
    runner = FakeRunner([])
    assert Replayer(runner, out=out).run(recorded_commands(str(tmp_path))) == 1
    assert "[1] not replayable: stdin" in out.getvalue()
    assert runner.ran == []


def test_redacted_commands_are_not_replayed(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    journal.record(CommandResult(("kubectl", "--token=abcdef", "get", "pods"), 0), env=ENV, redactor=SITE)
    out = io.StringIO()
    assert Replayer(FakeRunner([]), out=out).run(recorded_commands(str(tmp_path))) == 1
    assert "redacted" in out.getvalue()


def test_step_reads_answers_from_a_non_tty_stdin(tmp_path: Path) -> None:
    write_journal(tmp_path)
    answers = io.StringIO("s\n\n")  # skip 1, run 2, then end of input stops
    out = io.StringIO()
    runner = FakeRunner([(1, "", "NotFound")])
    ask = cli._stdin_asker(answers, out)
    assert Replayer(runner, out=out, ask=ask).run(recorded_commands(str(tmp_path))) == 0
    assert "[1] skipped" in out.getvalue()
    assert "[2] same" in out.getvalue()
    assert "stopped by the operator" in out.getvalue()
    assert [argv[1] for argv, _ in runner.ran] == ["delete"]


def test_kubectl_override_replaces_the_recorded_binary(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    journal.record(CommandResult(("kubectl", "get", "pods"), 0), env=ENV, redactor=SITE)
    runner = FakeRunner([(0, "", "")])
    Replayer(runner, out=io.StringIO(), kubectl="/opt/kubectl").run(recorded_commands(str(tmp_path)))
    assert runner.ran[0][0][0] == "/opt/kubectl"


def test_missing_journal_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", os.path.join(tmp_path, "nope.sh"), "--dry-run"]) == 2
    assert "cannot read the journal" in capsys.readouterr().err


def test_local_cluster_without_the_api_double_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import localkube.cli  # noqa: F401
    except ModuleNotFoundError:
        assert cli.main(["local-cluster"]) == 2
        assert "local API double" in capsys.readouterr().err
    else:
        parser = cli.build_parser(["local-cluster"])
        assert "local-cluster" in parser.format_help()


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "replay" in capsys.readouterr().err


def test_notes_are_printed_as_comments_by_dry_run_and_never_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(str(tmp_path))
    journal.record(CommandResult(("kubectl", "get", "pods"), 0), env=ENV, redactor=SITE)
    journal.note("results not collected;\nrecover them with: kubectl cp pod:/ws here", redactor=SITE)
    journal.record(CommandResult(("kubectl", "delete", "pod", "x"), 0), env=ENV, redactor=SITE)
    assert cli.main(["replay", journal.sh_path, "--dry-run", "--from", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "# results not collected;",
        "# recover them with: kubectl cp pod:/ws here",
        "KUBERC=off kubectl delete pod x",
    ]
    runner = FakeRunner([(0, "", ""), (0, "", "")])
    out = io.StringIO()
    assert Replayer(runner, out=out).run(recorded_commands(str(tmp_path))) == 0
    assert [argv for argv, _ in runner.ran] == [["kubectl", "get", "pods"], ["kubectl", "delete", "pod", "x"]]


def test_a_recorded_stream_is_printed_by_dry_run_but_not_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(str(tmp_path))
    journal.record(
        CommandResult(("kubectl", "get", "pods", "--watch"), 0, "", "", 31.0), env=ENV, redactor=SITE, stream="ended"
    )
    journal.record(CommandResult(("kubectl", "get", "pods"), 0), env=ENV, redactor=SITE)
    assert cli.main(["replay", journal.sh_path, "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["KUBERC=off kubectl get pods --watch", "KUBERC=off kubectl get pods"]
    runner = FakeRunner([(0, "", "")])
    out = io.StringIO()
    assert Replayer(runner, out=out).run(recorded_commands(str(tmp_path))) == 0
    assert "[1] long-running (a watch or logs -f): not replayed" in out.getvalue()
    assert [argv for argv, _ in runner.ran] == [["kubectl", "get", "pods"]]
