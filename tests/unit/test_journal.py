"""Journal formatting, redaction through the registry it is handed, and the JSON-lines twin."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import threading
from pathlib import Path
from typing import Any

from kubectl_launcher.kubectl import CommandResult, StdinRecord
from kubectl_launcher.kubectl.journal import Journal, json_output_digest, shell_line
from kubectl_launcher.kubectl.redact import Redactor
from kubectl_launcher.kubectl.replay import JournalNote, read_journal
from tests.support.journals import recorded_commands

ENV = {"KUBERC": "off", "KUBECACHEDIR": "/tmp/cache dir"}
ARGV = ("kubectl", "--kubeconfig", "/k/config", "--namespace", "default", "get", "pod", "x", "--output", "json")


def record(journal: Journal, command: CommandResult, **options: Any) -> int:
    """Journal.record with a registry of its own, as each Kubectl hands over its site's."""
    return journal.record(command, redactor=Redactor(), **options)


def result(argv: tuple[str, ...] = ARGV, rc: int | None = 0, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(argv, rc, stdout, stderr, 0.25, 1_700_000_000.5)


def command_lines(sh_file: str) -> list[str]:
    return [line for line in Path(sh_file).read_text().splitlines() if line and not line.startswith("#")]


def test_shell_line_is_pasteable_with_the_environment_prefix() -> None:
    line = shell_line(ARGV, ENV)
    assert line.startswith("KUBERC=off KUBECACHEDIR='/tmp/cache dir' kubectl --kubeconfig /k/config")
    words = shlex.split(line)
    assert words[2:] == list(ARGV)


def test_entry_has_time_duration_exit_code_and_result(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    record(journal, result(rc=1, stderr='Error from server (NotFound): pods "x" not found\n'), env=ENV)
    text = (tmp_path / "journal.sh").read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "# [1] 2023-11-14T22:13:20.500Z took 0.250s, exit code 1" in text
    assert '# stderr: Error from server (NotFound): pods "x" not found' in text
    (entry,) = recorded_commands(str(tmp_path / "journal.sh"))
    assert entry.index == 1
    assert entry.returncode == 1
    assert entry.data["started_at"] == "2023-11-14T22:13:20.500Z"
    assert entry.argv == list(ARGV)
    assert command_lines(journal.sh_path) == [entry.shell]


def test_files_are_readable_only_by_their_owner(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "j"))
    record(journal, result())
    for path in (journal.sh_path, journal.jsonl_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_secret_stdin_is_recorded_as_digest_and_rebuild_command(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    secret = b'{"kind":"Secret","data":{"key":"UFJJVkFURS1LRVk="}}'
    rebuild = ("kubectl", "create", "secret", "generic", "s", "--from-file=startup", "--dry-run=client", "-o", "json")
    argv = ("kubectl", "--namespace", "default", "apply", "-f", "-")
    record(journal, result(argv), stdin=secret, stdin_record=StdinRecord("startup kit of site-1", rebuild), env=ENV)
    sh_text = (tmp_path / "journal.sh").read_text()
    jsonl_text = (tmp_path / "journal.jsonl").read_text()
    for text in (sh_text, jsonl_text):
        assert "UFJJVkFURS1LRVk=" not in text
    digest = hashlib.sha256(secret).hexdigest()
    assert f"# stdin: startup kit of site-1, sha256 {digest} — not recorded" in sh_text
    (line,) = command_lines(journal.sh_path)
    assert line == f"{shell_line(rebuild, ENV)} | {shell_line(argv, ENV)}"
    note = json.loads(jsonl_text)["stdin"]
    assert note["sha256"] == digest and note["rebuild_argv"] == list(rebuild)


def test_stdin_without_a_record_is_never_written(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    record(journal, result(("kubectl", "apply", "-f", "-")), stdin=b"manifest-bytes-here")
    assert "manifest-bytes-here" not in (tmp_path / "journal.sh").read_text()
    assert "manifest-bytes-here" not in (tmp_path / "journal.jsonl").read_text()
    assert "19 bytes" in (tmp_path / "journal.sh").read_text()


def test_tokens_are_redacted_wherever_they_appear(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    site = Redactor()
    site.add("registered-secret-value")
    argv = ("kubectl", "--token=tok-123456", "--token", "tok-654321", "get", "registered-secret-value")
    stderr = "error: Authorization: Bearer tok-abcdef rejected; registered-secret-value\n"
    journal.record(result(argv, rc=1, stderr=stderr), env={"MY_TOKEN": "tok-env", "KUBERC": "off"}, redactor=site)
    for name in ("journal.sh", "journal.jsonl"):
        text = (tmp_path / name).read_text()
        for secret in ("tok-123456", "tok-654321", "tok-abcdef", "registered-secret-value", "tok-env"):
            assert secret not in text, (name, secret)
    assert "--token=***" in (tmp_path / "journal.sh").read_text()


def test_from_literal_keeps_the_key_and_hides_the_value() -> None:
    assert Redactor().argv(["kubectl", "--from-literal=password=hunter22"]) == [
        "kubectl",
        "--from-literal=password=***",
    ]


def test_the_registry_handed_over_with_each_record_is_the_one_applied(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    site = Redactor()
    site.add("site-secret")
    journal.record(result(("kubectl", "get", "site-secret")), redactor=site)
    assert "site-secret" not in (tmp_path / "journal.sh").read_text()
    assert not hasattr(journal, "redact")  # no registry of its own that could differ from the site's


def test_values_shorter_than_four_characters_are_not_secrets() -> None:
    site = Redactor()
    site.add("abc")
    site.add("abcd")
    assert site.text("abc abcd") == "abc ***"


def test_concurrent_records_never_interleave(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))

    def work(n: int) -> None:
        for i in range(20):
            record(journal, result(("kubectl", "get", "pod", f"p{n}-{i}", "x" * 2000)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = recorded_commands(journal.jsonl_path)
    assert sorted(e.index for e in entries) == list(range(1, 101))
    assert len(command_lines(journal.sh_path)) == 100


def test_a_reopened_journal_continues_its_numbering(tmp_path: Path) -> None:
    record(Journal(str(tmp_path)), result())
    record(Journal(str(tmp_path)), result())
    assert [e.index for e in recorded_commands(str(tmp_path))] == [1, 2]
    assert (tmp_path / "journal.sh").read_text().count("#!/bin/sh") == 1


def test_json_output_is_compared_without_volatile_fields() -> None:
    one = {"kind": "Pod", "metadata": {"name": "x", "resourceVersion": "1", "uid": "a"}, "status": {"phase": "Running"}}
    two = {"kind": "Pod", "metadata": {"name": "x", "resourceVersion": "9", "uid": "b"}, "status": {"phase": "Running"}}
    three = {"kind": "Pod", "metadata": {"name": "x"}, "status": {"phase": "Failed"}}
    d1, summary = json_output_digest(json.dumps(one)) or ("", {})
    d2, _ = json_output_digest(json.dumps(two)) or ("", {})
    d3, _ = json_output_digest(json.dumps(three)) or ("", {})
    assert d1 == d2 != d3
    assert summary == {"kind": "Pod", "name": "x", "phase": "Running"}
    assert json_output_digest("pod/x") is None


def test_a_note_is_a_comment_in_the_sh_file_and_a_note_line_in_the_jsonl(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    record(journal, CommandResult(("kubectl", "get", "pods"), 0), env={})
    site = Redactor()
    site.add("s3cr3t-value")
    journal.note(
        "results not collected; recover them with:\nkubectl cp --token s3cr3t-value pod:/ws /here", redactor=site
    )
    record(journal, CommandResult(("kubectl", "delete", "pod", "x"), 0), env={})
    sh_lines = Path(journal.sh_path).read_text().splitlines()
    start = next(i for i, line in enumerate(sh_lines) if line.startswith("# note ("))
    assert sh_lines[start].endswith("): results not collected; recover them with:")
    assert sh_lines[start + 1] == "# kubectl cp --token *** pod:/ws /here"
    assert "s3cr3t-value" not in Path(journal.sh_path).read_text() + Path(journal.jsonl_path).read_text()
    items = read_journal(journal.jsonl_path)
    assert [type(item).__name__ for item in items] == ["JournalEntry", "JournalNote", "JournalEntry"]
    note = items[1]
    assert isinstance(note, JournalNote) and note.text.endswith("kubectl cp --token *** pod:/ws /here")
    assert [e.index for e in recorded_commands(journal.jsonl_path)] == [1, 2]


def test_notes_do_not_shift_the_numbering_of_a_reopened_journal(tmp_path: Path) -> None:
    first = Journal(str(tmp_path))
    record(first, CommandResult(("kubectl", "version"), 0), env={})
    first.note("one", redactor=Redactor())
    first.note("two", redactor=Redactor())
    assert record(Journal(str(tmp_path)), CommandResult(("kubectl", "get", "pods"), 0), env={}) == 2


def test_a_note_cannot_inject_a_command_line(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    journal.note("harmless\r\nrm -rf / \x1b[2K\n\n", redactor=Redactor())
    lines = Path(journal.sh_path).read_text().split("# Running the whole file")[1].splitlines()[1:]
    assert lines and all(line == "" or line.startswith("#") for line in lines)


def test_a_stream_is_recorded_with_how_long_it_ran_and_how_it_ended(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    record(journal, result(rc=1, stderr="E1 klog\nerror: killed\n"), env=ENV, stream="stopped")
    (entry,) = recorded_commands(journal.jsonl_path)
    assert entry.data["stream"] == "stopped" and entry.returncode == 1
    text = Path(journal.sh_path).read_text()
    assert "streamed for 0.250s, stopped by the launcher, exit code 1" in text
    assert command_lines(journal.sh_path) == [entry.shell]
