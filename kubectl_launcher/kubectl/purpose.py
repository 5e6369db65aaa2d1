"""What a kubectl command was for: the tag every journal entry carries (`purpose` in journal.jsonl, in
parentheses in journal.sh). Callers pass one of these to Kubectl.run / get_json / stream; readers of a
journal (the demo's timeline, an operator's grep) rely on the words, so they only ever grow."""

from __future__ import annotations

SETUP = "setup"  # preflight: kubectl's version, the kubeconfig, the context
SECRET = "secret"  # the Secrets (and pod) metadata read before a launch; the credential Secret's owner
APPLY = "apply"  # a launch's one server-side apply: both Secrets (stdin) and the job pod (its manifest)
READ = "read"  # one look at the job pod
EVENTS = "events"  # why a pod is pending
WATCH = "watch"  # a long-running watch of pods
DELETE = "delete"  # the job's pod or Secret removed
DELIVER = "deliver"  # the workspace into the pod
COLLECT = "collect"  # results out of the pod
LEASE = "lease"  # the keeper's lease renewed
RELEASE = "release"  # the keeper told that results are collected
LOGS = "logs"  # a pod's log
TAKEOVER = "takeover"  # a new launcher's listing of the pods its site's earlier launcher left (takeover.py)
