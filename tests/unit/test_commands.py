"""kubectl argv builders: tuples of plain words, no global flags, nothing secret."""

from __future__ import annotations

import json

import pytest

from kubectl_launcher.domain.manifest import owner_patch
from kubectl_launcher.kubectl import commands

GLOBAL_FLAGS = ("--kubeconfig", "--context", "--namespace", "-n", "--request-timeout")


def test_apply_writes_json_and_validates_by_default() -> None:
    assert commands.apply_file("/w/j/kubectl-launcher/manifest.json") == (
        "apply",
        "--filename",
        "/w/j/kubectl-launcher/manifest.json",
        "--output",
        "json",
    )


def test_apply_without_validation_adds_validate_false() -> None:
    assert commands.apply_file("m.json", validate=False)[-1] == "--validate=false"


def test_secret_create_and_replace_read_stdin_and_print_only_the_name() -> None:
    assert commands.create_secret_from_stdin() == ("create", "--filename", "-", "--output", "name")
    assert commands.replace_secret_from_stdin() == ("replace", "--filename", "-", "--output", "name")
    assert commands.create_secret_from_stdin(validate=False)[-1] == "--validate=false"


def test_generic_create_and_replace_print_json() -> None:
    assert commands.create_from_stdin() == ("create", "--filename", "-", "--output", "json")
    assert commands.replace_from_stdin(validate=False) == (
        "replace",
        "--filename",
        "-",
        "--output",
        "json",
        "--validate=false",
    )


def test_secret_dry_run_names_files_never_values() -> None:
    argv = commands.secret_generic_dry_run("nvflare-startup-s", {"a.crt": "/ws/startup/a.crt", "b.key": "/x y/b.key"})
    assert argv == (
        "create",
        "secret",
        "generic",
        "nvflare-startup-s",
        "--from-file=a.crt=/ws/startup/a.crt",
        "--from-file=b.key=/x y/b.key",
        "--dry-run=client",
        "--output",
        "json",
    )
    assert not any(a.startswith("--from-literal") for a in argv)


def test_get_pod_tolerates_absence() -> None:
    assert commands.get_pod("p") == ("get", "pod", "p", "--ignore-not-found", "--output", "json")


def test_get_metadata_prints_only_metadata() -> None:
    assert commands.get_metadata("secret", "s") == (
        "get",
        "secret",
        "s",
        "--ignore-not-found",
        "--output",
        "jsonpath={.metadata}",
    )


def test_events_of_one_pod() -> None:
    assert commands.get_pod_events("p") == (
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=p",
        "--output",
        "json",
    )


def test_delete_pod_sends_the_grace_period_kubectl_really_sends() -> None:
    assert commands.delete_pod("p") == ("delete", "pod", "p", "--ignore-not-found", "--wait=false", "--grace-period=1")
    assert commands.delete_pod("p", grace_period=30)[-1] == "--grace-period=30"


def test_forced_delete_is_upstreams_immediate_removal() -> None:
    assert commands.delete_pod("p", force=True) == (
        "delete",
        "pod",
        "p",
        "--ignore-not-found",
        "--wait=false",
        "--force",
        "--grace-period=0",
    )


def test_grace_period_zero_without_force_is_refused_because_kubectl_would_send_one() -> None:
    with pytest.raises(ValueError, match="force"):
        commands.delete("pod", "p", grace_period=0)


def test_delete_secret_does_not_wait_and_ignores_absence() -> None:
    assert commands.delete_secret("s") == ("delete", "secret", "s", "--ignore-not-found", "--wait=false")


def test_merge_patch_of_an_owner_is_compact() -> None:
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}
    argv = commands.merge_patch("secret", "nvflare-cred-p", owner_patch(owner))
    assert argv[:6] == ("patch", "secret", "nvflare-cred-p", "--type", "merge", "--patch")
    assert json.loads(argv[6]) == {"metadata": {"ownerReferences": [owner]}}
    assert " " not in argv[6]
    assert argv[7:] == ("--output", "name")


@pytest.mark.parametrize(
    "argv",
    [
        commands.apply_file("f"),
        commands.create_secret_from_stdin(),
        commands.get_pod("p"),
        commands.get_pod_events("p"),
        commands.delete_pod("p"),
        commands.merge_patch("secret", "s", owner_patch({"uid": "u"})),
    ],
)
def test_builders_return_tuples_of_strings_without_global_flags(argv: tuple[str, ...]) -> None:
    assert isinstance(argv, tuple)
    assert all(isinstance(a, str) for a in argv)
    assert not any(a.split("=")[0] in GLOBAL_FLAGS for a in argv)


def test_server_side_apply_reads_files_in_order_and_prints_metadata_only() -> None:
    assert commands.apply_server_side("-", "m.json", force_conflicts=True, validate=False) == (
        "apply",
        "--server-side",
        "--field-manager=kubectl-launcher",
        "--filename",
        "-",
        "--filename",
        "m.json",
        "--output",
        'jsonpath={range .items[*]}{.kind}{"\\t"}{.metadata}{"\\n"}{end}',
        "--force-conflicts",
        "--validate=false",
    )


def test_metadata_of_several_objects_is_one_read_that_skips_the_missing() -> None:
    assert commands.get_metadata_of("pod/p", "secret/s") == (
        "get",
        "pod/p",
        "secret/s",
        "--ignore-not-found",
        "--output",
        commands.METADATA_LINES,
    )
