"""One site's shared objects (its pod watch, its lease): what they are keyed by, where they are kept, and the
Kubectl they run with.

A site's launcher and every job's `for_job` copy of its Kubectl must find the same shared object, and
that object serves every job of the site, so it journals into the site's journal only.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubectl_launcher.kubectl import Kubectl

__all__ = ["SiteObjects", "SiteScope", "site_journal_only"]

T = TypeVar("T")


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


class SiteObjects(Generic[T]):
    """The one object of each site (one kind: its pod watch, or its lease), made on first use and held
    weakly: it goes once nobody uses it."""

    def __init__(self) -> None:
        self._objects: weakref.WeakValueDictionary[SiteScope, T] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(
        self,
        kubectl: Kubectl,
        selector: str,
        namespace: str | None,
        make: Callable[[Kubectl, str], T],
        found: Callable[[T, Kubectl], None] | None = None,
    ) -> T:
        """The site's object for `selector` in `namespace` (default: kubectl's), made by `make(kubectl,
        namespace)` with the site-journal-only Kubectl; `found(object, kubectl)` when it existed already."""
        ns = namespace or kubectl.namespace
        kubectl = site_journal_only(kubectl)
        key = SiteScope.of(kubectl, ns, selector)
        with self._lock:
            existing = self._objects.get(key)
            if existing is None:
                made = self._objects[key] = make(kubectl, ns)
                return made
            if found is not None:
                found(existing, kubectl)
            return existing

    def all(self) -> list[T]:
        with self._lock:
            return list(self._objects.values())
