"""What one site's shared objects (its pod watch, its lease) are keyed by, and the Kubectl they run with.

A site's launcher and every job's `for_job` copy of its Kubectl must find the same shared object, and
that object serves every job of the site, so it journals into the site's journal only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from kubectl_launcher.kubectl import Kubectl

__all__ = ["SiteScope", "site_journal_only"]


@dataclass(frozen=True)
class SiteScope:
    """What makes two Kubectl objects the same site's: binary, kubeconfig, context, cache, environment,
    the namespace and the site's label selector."""

    binary: str
    kubeconfig: str | None
    context: str | None
    cache_dir: str
    extra_env: tuple[tuple[str, str], ...]
    namespace: str
    selector: str

    @classmethod
    def of(cls, kubectl: Kubectl, namespace: str, selector: str) -> SiteScope:
        env = tuple(sorted(kubectl.extra_env.items()))
        return cls(kubectl.kubectl, kubectl.kubeconfig, kubectl.context, kubectl.cache_dir, env, namespace, selector)


def site_journal_only(kubectl: Kubectl) -> Kubectl:
    """`kubectl`, or a copy journaling into its first journal only: a Kubectl is built with the site's journal
    and `for_job` adds the job's after it."""
    if len(kubectl.journals) <= 1:
        return kubectl
    site = copy.copy(kubectl)
    site.journals = kubectl.journals[:1]
    return site
