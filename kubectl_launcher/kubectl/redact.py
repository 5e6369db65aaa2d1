"""Redaction, the lowest module of the seam: what must never be written, and the one registry that hides it.

One `Redactor` per site: the site's `Kubectl` owns it, its `for_job` copies share it, and every journal,
note, error message and `describe()` goes through it (`Kubectl.redact(value)` is the one way to
register). Besides registered values, credentials are recognised by their place: the value of a
secret flag (`--token`, `--password`, ...), a `--from-literal=key=value`'s value, an environment
variable named like a secret, and `bearer`/`token:` patterns in free text.

Public identifiers (the job id, the pod's and Secrets' names, the namespace, the site name, our labels'
values: `Kubectl.declare_public`) are never secrets, whatever else they are: NVFlare's server uses the
job id as the job's token, and masking it would break every journal line that names the job's pod or
folder. A value equal to a public identifier, or contained in one, is therefore not registered (and is
dropped when an identifier is declared after it): the journal stays replayable, and the text it would
have masked is printed anyway wherever the identifier is.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence

REDACTED = "***"

# Flags whose value is a credential. Both `--flag=value` and `--flag value` are covered.
SECRET_FLAGS = frozenset({"--token", "--password", "--username", "--client-key-data", "--auth-provider-arg"})
# `--from-literal=key=value` puts a Secret's value on the command line; keep the key, hide the value.
LITERAL_FLAGS = frozenset({"--from-literal"})
SECRET_ENV_WORDS = ("TOKEN", "PASSWORD", "SECRET", "CREDENTIAL")
TEXT_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(--token[= ])[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\"?(?:token|password|client-key-data)\"?\s*[:=]\s*\"?)[^\s\"',;]+"), r"\1" + REDACTED),
)
# Registered values shorter than this would mangle ordinary text; real secrets are longer.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces credentials in argv, environments and free text. Thread-safe; one per site."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._public: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Never write `value` anywhere from now on (values shorter than 4 characters, and public
        identifiers or parts of one, are ignored)."""
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                if not self._is_public(value):
                    self._secrets.add(value)

    def declare_public(self, *values: str) -> None:
        """`values` are identifiers printed by design (job id, pod name, namespace, ...): never masked."""
        with self._lock:
            self._public.update(v for v in values if v)
            self._secrets = {s for s in self._secrets if not self._is_public(s)}

    def is_secret(self, value: str) -> bool:
        """Whether `value` is registered (and would be masked in text)."""
        with self._lock:
            return value in self._secrets

    def _is_public(self, value: str) -> bool:  # under _lock
        return any(value in public for public in self._public)

    def text(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def argv(self, argv: Sequence[str]) -> list[str]:
        out: list[str] = []
        hide_next = False
        for arg in argv:
            if hide_next:
                out.append(REDACTED)
                hide_next = False
                continue
            flag, eq, value = arg.partition("=")
            if flag in SECRET_FLAGS:
                if eq:
                    out.append(f"{flag}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
            if flag in LITERAL_FLAGS and eq:
                key = value.partition("=")[0]
                out.append(f"{flag}={key}={REDACTED}")
                continue
            out.append(self.text(arg))
        return out

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {
            key: REDACTED if any(word in key.upper() for word in SECRET_ENV_WORDS) else self.text(value)
            for key, value in env.items()
        }


__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "Redactor"]
