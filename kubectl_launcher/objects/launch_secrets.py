"""A launch's objects in one server-side apply: its pod from the manifest file, its Secrets (the site's
startup kit, the job's credentials) through kubectl's stdin; and whose each object is.

Secret data only ever travels on stdin: never in an argv, a file on disk, a journal line or a message.
Before the apply, one read of the three objects' metadata (``check_before_apply``): an existing pod
is never patched into this launch's spec, and an existing Secret is applied over only when it carries
the labels the launcher would have given it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from kubectl_launcher.domain.manifest import build_secret_manifest, owner_patch, owner_reference, to_json
from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from kubectl_launcher.domain.plan import LaunchPlan
from kubectl_launcher.errors import ConfigError, KubectlError, KubectlNotFound, ProtocolError
from kubectl_launcher.kubectl import Kubectl, StdinRecord, commands
from kubectl_launcher.kubectl.purpose import APPLY, SECRET

__all__ = ["LaunchSecrets", "carries_labels", "parse_metadata_lines", "raise_if_validation", "startup_kit_files"]

# What the job pod reads from startup/ at run time; the rest (scripts, readme) stays out of the Secret.
_STARTUP_KEEP_SUFFIXES = (".crt", ".key", ".pem", ".json")


def startup_kit_files(startup_dir: str) -> dict[str, str]:
    """``{file name: path}`` of the startup kit's top-level .crt/.key/.pem/.json files, sorted."""
    if not os.path.isdir(startup_dir):
        return {}
    files = {}
    for name in sorted(os.listdir(startup_dir)):
        path = os.path.join(startup_dir, name)
        if name.endswith(_STARTUP_KEEP_SUFFIXES) and os.path.isfile(path):
            files[name] = path
    return files


def carries_labels(found: Mapping[str, Any] | None, wanted: Mapping[str, str]) -> bool:
    """Whether an object's labels include every one of ``wanted`` (how the launcher knows its own)."""
    found = found or {}
    return all(found.get(key) == value for key, value in wanted.items())


def raise_if_validation(error: KubectlError) -> None:
    """kubectl's "turn validation off" advice, pointed at the launcher setting that does it."""
    if "--validate=false" in (error.stderr or ""):
        raise ConfigError(
            f"{error} — this API server offers no OpenAPI schema for kubectl to validate against; "
            'set "kubectl_validate": false in the launcher\'s args in resources.json'
        ) from error


def parse_metadata_lines(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(kind, name): metadata}`` from ``commands.METADATA_LINES`` output; ProtocolError when malformed."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        kind, sep, text = line.partition("\t")
        try:
            metadata = json.loads(text) if sep else None
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise ProtocolError(f"kubectl printed a line that is not '<kind>\\t<metadata>': {line[:200]!r}")
        found[(kind, str(metadata["name"]))] = metadata
    return found


class LaunchSecrets:
    """The objects of one launch, in the namespace of its Kubectl (the one place it is held).

    ``created`` is the launch's list of (kind, name) it made, shared with the launch that deletes
    them again when a later step fails; the startup-kit Secret is the site's and never in it.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        plan: LaunchPlan,
        *,
        validate: bool,
        created: list[tuple[str, str]],
        logger: logging.Logger,
    ) -> None:
        self.kubectl = kubectl
        self.plan = plan
        self.validate = validate
        self.created = created
        self.logger = logger

    @property
    def site_labels(self) -> dict[str, str]:
        return {k: v for k, v in self.plan.labels.items() if k != JOB_LABEL}

    # -- before anything is created --

    def check_before_apply(self) -> str | None:
        """One read of the pod's and both Secrets' metadata; raise, naming the fix, when a Secret is not ours.

        Returns why the launch cannot go on when the pod exists already (None when it does not): the
        launch reports that through its handle, as a job that failed. Nothing is created or changed here.
        """
        plan = self.plan
        found = parse_metadata_lines(
            self.kubectl.run(
                commands.get_metadata_of(
                    f"pod/{plan.pod_name}",
                    f"secret/{plan.startup_secret_name}",
                    f"secret/{plan.credential_secret_name}",
                ),
                idempotent=True,
                purpose=SECRET,
            ).stdout
        )
        pod = found.get(("Pod", plan.pod_name))
        if pod is not None:
            labels = pod.get("labels") or {}
            whose = (
                "an earlier launch of this job at this site"
                if carries_labels(labels, plan.labels)
                else "someone else"
                if labels.get(MANAGED_BY_LABEL) != MANAGED_BY
                else "another kubectl-launcher job"
            )
            remove = self.kubectl.describe(self.kubectl.argv(commands.delete_pod(plan.pod_name)))
            pod_exists = (
                f"pod {plan.pod_name} already exists in namespace {self.kubectl.namespace} (created by {whose}); "
                f"it was left as it is. Remove it with: {remove}"
            )
        else:
            pod_exists = None
        for name, labels in (
            (plan.startup_secret_name, self.site_labels),
            (plan.credential_secret_name, dict(plan.labels)),
        ):
            secret = found.get(("Secret", name))
            if secret is not None and not carries_labels(secret.get("labels"), labels):
                remove = self.kubectl.describe(self.kubectl.argv(commands.delete_secret(name)))
                raise RuntimeError(
                    f"Secret {name} exists in namespace {self.kubectl.namespace} and was not created by "
                    f"kubectl-launcher for this site; remove it ({remove}) or use another namespace"
                )
        return pod_exists

    # -- the apply --

    def apply(self, manifest_path: str) -> dict[str, Any]:
        """The Secrets (stdin, first: the pod finds them when it starts) and the pod (its manifest file) in
        one server-side apply; returns the pod's metadata as the server returned it (uid included).

        The credential Secret and the pod are recorded in ``created`` before the apply: an apply that
        failed half-way may have made either.
        """
        plan = self.plan
        self.created.append(("secret", plan.credential_secret_name))
        self.created.append(("pod", plan.pod_name))
        stdin, record = self._secrets_stdin()
        try:
            result = self.kubectl.run(
                # our labels were checked: fields an earlier version created with kubectl create are ours
                commands.apply_server_side("-", manifest_path, validate=self.validate, force_conflicts=True),
                stdin=stdin,
                stdin_record=record,
                purpose=APPLY,
            )
        except KubectlError as e:
            raise_if_validation(e)
            raise
        pod = parse_metadata_lines(result.stdout).get(("Pod", plan.pod_name))
        if pod is None:
            raise ProtocolError(f"kubectl apply printed no pod {plan.pod_name}")
        return pod

    def _secrets_stdin(self) -> tuple[bytes, StdinRecord]:
        plan, namespace = self.plan, self.kubectl.namespace
        startup = {}
        for key, path in plan.startup_files.items():
            with open(path, "rb") as f:
                startup[key] = f.read()
        credentials = {key: value.encode() for key, value in plan.credential_env.items()}
        items = [
            build_secret_manifest(plan.startup_secret_name, namespace, startup, self.site_labels),
            build_secret_manifest(plan.credential_secret_name, namespace, credentials, plan.labels),
        ]
        record = StdinRecord(
            f"Secret {plan.startup_secret_name} with the startup kit's {', '.join(startup) or 'no files'} and "
            f"Secret {plan.credential_secret_name} with the job's {', '.join(credentials) or 'no credentials'} "
            "(contents withheld). Replaying rebuilds only the startup kit's Secret from its files (labels aside); "
            "the credential Secret is not replayable: its values exist only in the parent process",
            rebuild_argv=(
                self.kubectl.kubectl,
                *commands.secret_generic_dry_run(plan.startup_secret_name, plan.startup_files),
            ),
        )
        # Concatenated JSON objects, not a List: kubectl reads a stream of them, and validates each by its
        # own kind (a v1 List is in no OpenAPI document, so kubectl would fall back to client-side schemas).
        return "\n".join(to_json(item) for item in items).encode(), record

    # -- after the apply --

    def own_credential_secret(self, pod: Mapping[str, Any]) -> None:
        """Make the job pod the credential Secret's owner, so garbage collection removes it with the pod.

        ``pod`` is the pod's metadata (or the pod) as the server returned it: the reference needs its uid,
        which exists only once the apply made the pod, hence a second command.
        """
        name = self.plan.credential_secret_name
        try:
            owner = owner_reference(pod if "metadata" in pod else {"metadata": pod})
            self.kubectl.run(commands.merge_patch("secret", name, owner_patch(owner)), idempotent=True, purpose=SECRET)
        except KubectlNotFound:
            # It runs while the pod starts (launch.py): the job container may have started and the handle
            # retired the Secret first, which is all the reference was for.
            self.logger.info(f"Secret {name} was deleted before its ownerReference was set; nothing to own")
        except (KubectlError, ValueError) as e:
            self.logger.warning(
                f"failed to set ownerReference on Secret {name}: {e}; "
                "it will be deleted when the job handle reaches a terminal state"
            )
