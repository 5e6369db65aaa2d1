"""A launch's Secrets (the site's startup kit, the job's credentials) through kubectl's stdin, and whose they are.

Secret data only ever travels on stdin: never in an argv, a file on disk, a journal line or a message.
An existing Secret is replaced only when it carries the labels the launcher would have given it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from kubectl_launcher.domain.manifest import build_secret_manifest, owner_patch, owner_reference, to_json
from kubectl_launcher.domain.names import JOB_LABEL
from kubectl_launcher.domain.plan import LaunchPlan
from kubectl_launcher.errors import ConfigError, KubectlAlreadyExists, KubectlError, KubectlNotFound
from kubectl_launcher.kubectl import Kubectl, StdinRecord, commands
from kubectl_launcher.kubectl.purpose import SECRET

__all__ = ["LaunchSecrets", "carries_labels", "raise_if_validation", "startup_kit_files"]

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


class LaunchSecrets:
    """The Secrets of one launch, in the namespace of its Kubectl (the one place it is held).

    ``created`` is the launch's list of (kind, name) it made, shared with the launch that deletes
    them again when a later step fails.
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

    def ensure_startup_secret(self) -> None:
        """The site's startup-kit Secret, shared by its jobs: created, or replaced with today's files."""
        plan = self.plan
        data = {}
        for key, path in plan.startup_files.items():
            with open(path, "rb") as f:
                data[key] = f.read()
        site_labels = {k: v for k, v in plan.labels.items() if k != JOB_LABEL}
        body = build_secret_manifest(plan.startup_secret_name, self.kubectl.namespace, data, site_labels)
        record = StdinRecord(
            f"Secret {plan.startup_secret_name} with the startup kit's {', '.join(data) or 'no files'} "
            "(contents withheld)",
            # The offline kubectl line that rebuilds the same data from the files (labels aside).
            rebuild_argv=(
                self.kubectl.kubectl,
                *commands.secret_generic_dry_run(plan.startup_secret_name, plan.startup_files),
            ),
        )
        self._create_or_replace(plan.startup_secret_name, body, record, site_labels, adopt=False)

    def create_credential_secret(self) -> None:
        """The job's own Secret with its credentials; a failed launch deletes it."""
        plan = self.plan
        data = {key: value.encode() for key, value in plan.credential_env.items()}
        body = build_secret_manifest(plan.credential_secret_name, self.kubectl.namespace, data, plan.labels)
        record = StdinRecord(
            f"Secret {plan.credential_secret_name} with the job's {', '.join(data) or 'no credentials'} "
            "(values withheld; they exist only in the parent process)"
        )
        self._create_or_replace(plan.credential_secret_name, body, record, plan.labels, adopt=True)

    def own_credential_secret(self, pod: Mapping[str, Any]) -> None:
        """Make the job pod the credential Secret's owner, so garbage collection removes it with the pod."""
        name = self.plan.credential_secret_name
        try:
            owner = owner_reference(pod)
            self.kubectl.run(commands.merge_patch("secret", name, owner_patch(owner)), idempotent=True, purpose=SECRET)
        except (KubectlError, ValueError) as e:
            self.logger.warning(
                f"failed to set ownerReference on Secret {name}: {e}; "
                "it will be deleted when the job handle reaches a terminal state"
            )

    def _create_or_replace(
        self, name: str, body: Mapping[str, Any], record: StdinRecord, labels: Mapping[str, str], *, adopt: bool
    ) -> None:
        """Create through stdin; an existing Secret is replaced only when our labels say it is ours.

        ``adopt``: record the Secret as this launch's, so a failed launch deletes it.
        """
        stdin = to_json(body).encode()
        if adopt:
            # Before the create: a create whose reply was lost may still have made it.
            self.created.append(("secret", name))
        try:
            self.kubectl.run(
                commands.create_secret_from_stdin(validate=self.validate),
                stdin=stdin,
                stdin_record=record,
                purpose=SECRET,
            )
            return
        except KubectlAlreadyExists:
            pass
        except KubectlError as e:
            raise_if_validation(e)
            raise
        if not self._is_ours("secret", name, labels):
            if adopt:
                self.created.remove(("secret", name))
            remove = self.kubectl.describe(self.kubectl.argv(commands.delete_secret(name)))
            raise RuntimeError(
                f"Secret {name} exists in namespace {self.kubectl.namespace} and was not created by "
                f"kubectl-launcher for this site; remove it ({remove}) or use another namespace"
            )
        try:
            self.kubectl.run(
                commands.replace_secret_from_stdin(validate=self.validate),
                stdin=stdin,
                stdin_record=record,
                idempotent=True,
                purpose=SECRET,
            )
        except KubectlNotFound:
            # Deleted between our create and replace (garbage collection of an old job's Secret).
            self.kubectl.run(
                commands.create_secret_from_stdin(validate=self.validate),
                stdin=stdin,
                stdin_record=record,
                purpose=SECRET,
            )

    def _is_ours(self, kind: str, name: str, labels: Mapping[str, str]) -> bool:
        # Only the metadata: a Secret's data never comes back to this process.
        metadata = self.kubectl.get_json(commands.get_metadata(kind, name), purpose=SECRET)
        return carries_labels((metadata or {}).get("labels"), labels)
