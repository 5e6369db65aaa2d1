"""doctor's pure parts: the Role as data (held against README.md), can-i argv and answers, the findings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubectl_launcher.cli import checks as c
from kubectl_launcher.domain.pod_security import namespace_levels, violations
from kubectl_launcher.domain.rbac import RULES, permissions, role_manifest_yaml

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_role_as_data_is_the_role_the_readme_prints() -> None:
    text = README.read_text()
    block = re.search(r"```yaml\n(apiVersion: rbac.authorization.k8s.io/v1\n.*?)```", text, re.S)
    assert block is not None, "README.md no longer shows the Role"
    readme_lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in block.group(1).splitlines()]
    assert readme_lines == role_manifest_yaml("nvflare").splitlines()


def test_every_verb_of_the_role_is_asked_about_pods_exec_included() -> None:
    pairs = {(p.verb, p.resource) for p in permissions()}
    assert ("create", "pods/exec") in pairs and ("list", "events") in pairs
    assert len(pairs) == sum(len(r.verbs) for r in RULES)


@pytest.mark.parametrize(
    ("verb", "resource", "argv"),
    [
        ("create", "pods/exec", ["auth", "can-i", "create", "pods", "--subresource", "exec"]),
        ("list", "events", ["auth", "can-i", "list", "events"]),
    ],
)
def test_can_i_asks_about_a_subresource_with_its_flag(verb: str, resource: str, argv: list[str]) -> None:
    assert c.can_i_argv(verb, resource) == argv


@pytest.mark.parametrize(
    ("rc", "stdout", "answer"), [(0, "yes\n", True), (1, "no\n", False), (1, "", None), (None, "", None)]
)
def test_can_i_answers(rc: int | None, stdout: str, answer: bool | None) -> None:
    assert c.can_i_answer(rc, stdout) is answer


def test_a_denied_verb_names_verb_resource_and_the_role_line_to_add() -> None:
    rule = next(r for r in RULES if r.resource == "pods/exec")
    check = c.permission_check(rule, {"get": True, "create": False}, "nvflare")
    assert check.severity == c.ERROR
    assert "create pods/exec" in check.found
    assert '- {apiGroups: [""], resources: [pods/exec], verbs: [get, create]}' in check.fix


@pytest.mark.parametrize(
    ("client", "server", "severity"), [((1, 32), (1, 32), c.OK), ((1, 32), (1, 31), c.OK), ((1, 32), (1, 30), c.WARN)]
)
def test_version_skew_beyond_one_minor_warns(client: tuple[int, int], server: tuple[int, int], severity: str) -> None:
    assert c.skew_check(client, server).severity == severity


def test_server_version_reads_kubectls_json() -> None:
    assert c.server_version('{"serverVersion": {"major": "1", "minor": "31+"}}') == (1, 31)
    assert c.server_version("not json") is None


POD = {
    "spec": {
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [{"name": "job", "image": "x", "securityContext": {"privileged": True}}],
        "volumes": [{"name": "ws", "emptyDir": {}}],
    }
}


def test_pod_security_levels_refuse_what_they_forbid_naming_the_container() -> None:
    assert violations(POD, "privileged") == []
    assert violations(POD, "baseline") == ["container 'job': securityContext.privileged=true"]
    restricted = violations(POD, "restricted")
    assert any("'init'" in v and "runAsNonRoot" in v for v in restricted)
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        violations(POD, "strict")


def test_pod_security_check_is_an_error_when_enforced_and_a_warning_when_only_warned() -> None:
    enforced = c.pod_security_check({"pod-security.kubernetes.io/enforce": "baseline"}, POD, "nvflare")
    assert enforced.severity == c.ERROR and "would be refused" in enforced.found
    warned = c.pod_security_check({"pod-security.kubernetes.io/warn": "baseline"}, POD, "nvflare")
    assert warned.severity == c.WARN
    assert namespace_levels(None) == {"enforce": "privileged", "warn": "privileged", "audit": "privileged"}


@pytest.mark.parametrize(
    ("labels", "severity", "words"),
    [
        (None, c.OK, "absent"),
        ({"app.kubernetes.io/managed-by": "kubectl-launcher", "kubectl-launcher/site": "s-1"}, c.OK, "ours"),
        ({"app.kubernetes.io/managed-by": "kubectl-launcher", "kubectl-launcher/site": "s-2"}, c.ERROR, "another"),
        ({"team": "x"}, c.ERROR, "someone else's"),
    ],
)
def test_startup_secret_ownership(labels: dict[str, str] | None, severity: str, words: str) -> None:
    metadata = None if labels is None else {"labels": labels}
    check = c.startup_secret_check("nvflare-startup-s", "s-1", metadata)
    assert check.severity == severity and words in check.found


def test_the_worst_severity_decides() -> None:
    assert c.worst([c.Check("a", c.OK, ""), c.Check("b", c.WARN, "")]) == c.WARN
    assert c.worst([]) == c.OK


def test_human_output_has_no_escape_codes_without_colour() -> None:
    text = c.format_checks([c.Check("namespace", c.ERROR, "missing", "create it")], colour=False)
    assert "\033" not in text and "fix: create it" in text
    assert "\033[31m" in c.format_checks([c.Check("namespace", c.ERROR, "missing")], colour=True)
