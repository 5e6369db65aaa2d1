"""`doctor`: can this site launch jobs here? Read-only checks, each with a severity, what it found and the fix."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from kubectl_launcher.cli import checks as c
from kubectl_launcher.cli import output
from kubectl_launcher.cli.options import (
    DEFAULT_NAMESPACE,
    EXIT_OK,
    EXIT_PROBLEM,
    add_cluster_options,
    context_namespace,
    make_kubectl,
)
from kubectl_launcher.cli.site import SiteSettings, default_settings, make_launcher, read_resources, render_launch
from kubectl_launcher.domain.rbac import RULES
from kubectl_launcher.errors import ConfigError, KubectlError, KubectlForbidden, ProtocolError
from kubectl_launcher.kubectl import Kubectl, commands
from kubectl_launcher.kubectl.purpose import READ, SECRET, SETUP
from kubectl_launcher.kubectl.runner import MIN_KUBECTL_VERSION
from kubectl_launcher.kubectl.setup import parse_client_version
from kubectl_launcher.kubectl.stderr import clean_excerpt
from kubectl_launcher.launcher import K8sJobLauncher

SAMPLE_IMAGE = "doctor.invalid/nvflare-job:0"
SAMPLE_JOB = {"job_id": "00000000-0000-4000-8000-00000000d0c7", "name": "doctor"}


class _Doctor:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.checks: list[c.Check] = []
        self.launcher: K8sJobLauncher | None = None
        self.settings: SiteSettings = default_settings()

    def add(self, check: c.Check) -> c.Check:
        self.checks.append(check)
        return check

    # -- the site's settings (offline) --

    def site_settings(self) -> None:
        ns = self.ns
        if ns.site_workspace:
            path = os.path.join(ns.site_workspace, "local", "resources.json")
            try:
                self.settings = read_resources(path)
                self.launcher = make_launcher(self.settings)
            except ConfigError as exc:
                self.add(c.Check("site settings", c.ERROR, str(exc), "fix the launcher component in resources.json"))
                return
            self.add(c.Check("site settings", c.OK, f"{self.settings.launcher_class.__name__} in {path}"))
            args = self.settings.args
            # The launcher's own settings, where the command line does not say otherwise.
            ns.kubeconfig = ns.kubeconfig or args.get("config_file_path") or None
            ns.context = ns.context or args.get("context")
            ns.namespace = ns.namespace or args.get("namespace")
            if ns.kubectl == "kubectl" and args.get("kubectl"):
                ns.kubectl = args["kubectl"]
        else:
            self.launcher = make_launcher(default_settings(namespace=ns.namespace or DEFAULT_NAMESPACE))

    # -- kubectl and the kubeconfig (offline) --

    def local_setup(self, kubectl: Kubectl) -> bool:
        binary = shutil.which(self.ns.kubectl) if os.sep not in self.ns.kubectl else self.ns.kubectl
        if binary is None or not os.access(binary, os.X_OK):
            need = f"{MIN_KUBECTL_VERSION[0]}.{MIN_KUBECTL_VERSION[1]}"
            self.add(
                c.Check(
                    "kubectl",
                    c.ERROR,
                    f"{self.ns.kubectl!r} not found",
                    f"install kubectl {need}+ on PATH, or pass --kubectl PATH",
                )
            )
            return False
        result = kubectl.run(["version", "--client", "--output", "json"], check=False, purpose=SETUP)
        version = parse_client_version(result.stdout) if result.returncode == 0 else None
        if version is None:
            self.add(c.Check("kubectl", c.ERROR, f"{binary} does not say its version", "is it a kubectl binary?"))
            return False
        self.client_version = version
        try:
            kubectl.check_setup()
        except ConfigError as exc:
            text = str(exc)
            name = "kubectl" if "kubectl" in text.split(";")[0] and "version" in text else "kubeconfig"
            self.add(c.Check(name, c.ERROR, text.split("; ")[0], "; ".join(text.split("; ")[1:])))
            return False
        self.add(c.Check("kubectl", c.OK, f"{binary}, version {version[0]}.{version[1]}"))
        current = (
            kubectl.context or kubectl.run(["config", "current-context"], check=False, purpose=SETUP).stdout.strip()
        )
        where = kubectl.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        self.add(c.Check("kubeconfig", c.OK, f"{where}, context {current or '(in-cluster)'}"))
        return True

    # -- the cluster (read-only) --

    def reachable(self, kubectl: Kubectl) -> bool:
        result = kubectl.run(["version", "--output", "json"], check=False, purpose=SETUP)
        server = c.server_version(result.stdout)
        if result.returncode != 0 or server is None:
            self.add(c.Check(
                "API server", c.ERROR, f"not reachable: {clean_excerpt(result.stderr, 300) or 'no answer'}",
                "check the server address and credentials in the kubeconfig, the network and any proxy; "
                "the remaining checks need the API server and were not run",
            ))  # fmt: skip
            return False
        self.add(c.Check("API server", c.OK, f"reachable, Kubernetes {server[0]}.{server[1]}"))
        self.add(c.skew_check(self.client_version, server))
        return True

    def namespace(self, kubectl: Kubectl) -> dict[str, Any] | None:
        try:
            found = kubectl.get_json(
                ["get", "namespace", kubectl.namespace, "--ignore-not-found", "--output", "json"], purpose=READ
            )
        except KubectlForbidden:
            self.add(c.namespace_check(kubectl.namespace, None, True))
            return None
        self.add(c.namespace_check(kubectl.namespace, found, False))
        return found

    def permissions(self, kubectl: Kubectl) -> None:
        for rule in RULES:
            answers: dict[str, bool | None] = {}
            for verb in rule.verbs:
                result = kubectl.run(c.can_i_argv(verb, rule.resource), check=False, purpose=SETUP)
                answers[verb] = c.can_i_answer(result.returncode, result.stdout)
            self.add(c.permission_check(rule, answers, kubectl.namespace))

    def pull_secrets(self, kubectl: Kubectl) -> None:
        for name in self.launcher.image_pull_secrets if self.launcher else []:
            result = kubectl.run(
                ["get", "secret", name, "--ignore-not-found", "--output", "name"], check=False, purpose=SECRET
            )
            self.add(
                c.pull_secret_check(name, result.returncode == 0 and bool(result.stdout.strip()), kubectl.namespace)
            )

    def our_pod(self, kubectl: Kubectl, namespace_obj: dict[str, Any] | None, *, pod_security: bool) -> None:
        if self.launcher is None:
            return
        site = self.ns.site or "site-1"
        meta = {**SAMPLE_JOB, "launcher_spec": {"default": {"k8s": {"image": self.ns.image}}}}
        try:
            rendered = render_launch(
                self.launcher, meta, site=site, server=self.settings.is_server, site_workspace=self.ns.site_workspace
            )
        except (RuntimeError, ValueError) as exc:
            self.add(
                c.Check("launch plan", c.ERROR, f"a sample job cannot be planned: {exc}", "fix the launcher's args")
            )
            return
        if pod_security:
            labels = ((namespace_obj or {}).get("metadata") or {}).get("labels") or {}
            self.add(c.pod_security_check(labels, rendered.pod, kubectl.namespace))
        if self.ns.site:
            plan = rendered.plan
            name = plan.startup_secret_name
            metadata = kubectl.get_json(commands.get_metadata("secret", name), purpose=SECRET)
            site_label = plan.labels.get("kubectl-launcher/site", "")
            self.add(c.startup_secret_check(name, site_label, metadata))
        else:
            self.add(c.Check("startup-kit Secret", c.OK, "not checked: pass --site SITE to check its ownership"))

    def run(self) -> list[c.Check]:
        self.site_settings()
        try:
            kubectl = make_kubectl(self.ns, namespace=self.ns.namespace or DEFAULT_NAMESPACE)
            if not self.local_setup(kubectl):
                return self.checks
            if not self.ns.namespace:
                kubectl.namespace = context_namespace(kubectl) or DEFAULT_NAMESPACE
            if not self.reachable(kubectl):
                return self.checks
            namespace_obj = self.namespace(kubectl)
            self.permissions(kubectl)
            self.pull_secrets(kubectl)
            self.our_pod(kubectl, namespace_obj, pod_security=namespace_obj is not None)
        except (KubectlError, ProtocolError) as exc:
            self.add(c.Check("kubectl", c.ERROR, f"a read-only command failed: {exc}", "see the CLI's journal"))
        return self.checks


def _cmd_doctor(ns: argparse.Namespace) -> int:
    write = sys.stdout.write
    found = _Doctor(ns).run()
    if ns.output in ("json", "yaml"):
        data = {"ok": c.worst(found) != c.ERROR, "worst": c.worst(found), "checks": [x.as_dict() for x in found]}
        write(output.dump(data, ns.output))
    else:
        write(c.format_checks(found, colour=output.is_tty(sys.stdout)))
    return EXIT_PROBLEM if c.worst(found) == c.ERROR else EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check that this site can launch jobs here (read-only)",
        description="Read-only checks of a site's set-up: kubectl and its version skew against the server, "
        "the kubeconfig and context, the API server, the namespace, every permission of the README's Role "
        "(kubectl auth can-i, pods/exec included), the image pull secrets the launcher names, whether our "
        "pods (init container and keeper included) pass the namespace's Pod Security level, and whose the "
        "startup-kit Secret is. With --site-workspace, the launcher's own arguments from local/resources.json "
        "are checked and used.",
        epilog="exit codes: 0 no error (warnings allowed); 1 an error found (each names its fix); 2 usage error",
    )
    parser.add_argument("--site", help="the NVFlare site name (to check its startup-kit Secret)")
    parser.add_argument("--site-workspace", metavar="DIR", help="the site's workspace: read local/resources.json")
    parser.add_argument("--image", default=SAMPLE_IMAGE, help="job image for the sample pod (default: a placeholder)")
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="every check as data")
    add_cluster_options(parser)
    parser.set_defaults(func=_cmd_doctor)
