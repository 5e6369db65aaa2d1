"""The streaming list kubectl 1.35+ asks for (`sendInitialEvents=true`): the current objects as ADDED, then a
BOOKMARK annotated `k8s.io/initial-events-end: "true"` — the same lines kube-apiserver 1.37 answers
(`--control-plane both` runs these tests against each)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WATCH = "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1&"
STREAMING = WATCH + "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


def test_streaming_list_ends_the_initial_events_with_a_bookmark(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "create", "secret", "generic", "s1", "--from-literal=a=b").returncode == 0
    raw = run_kubectl(local_cluster, "get", "--raw", STREAMING)
    assert raw.returncode == 0, raw.stderr
    added, bookmark = (json.loads(line) for line in raw.stdout.splitlines())
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "s1")
    end_rv = bookmark["object"]["metadata"].pop("resourceVersion")
    assert int(end_rv) >= int(added["object"]["metadata"]["resourceVersion"])  # the store's latest, not older
    assert bookmark == {
        "type": "BOOKMARK",
        "object": {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"annotations": {"k8s.io/initial-events-end": "true"}},
        },
    }


def test_streaming_list_without_bookmarks_sends_only_the_objects(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "create", "secret", "generic", "s1", "--from-literal=a=b").returncode == 0
    raw = run_kubectl(local_cluster, "get", "--raw", STREAMING.replace("&allowWatchBookmarks=true", ""))
    assert [json.loads(line)["type"] for line in raw.stdout.splitlines()] == ["ADDED"]
    only_new = STREAMING.replace("sendInitialEvents=true", "sendInitialEvents=false")
    quiet = run_kubectl(local_cluster, "get", "--raw", only_new)
    assert (quiet.returncode, quiet.stdout) == (0, "")


def test_streaming_list_needs_resource_version_match(local_cluster: Any, run_kubectl: Any) -> None:
    raw = run_kubectl(local_cluster, "get", "--raw", WATCH + "sendInitialEvents=true&allowWatchBookmarks=true")
    assert raw.returncode == 1
    assert raw.stderr.strip() == (
        'The ListOptions "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting '
        "resourceVersionMatch to NotOlderThan"
    )
