"""API server behaviour through the real kubectl: validation errors, immutability, the PATCH flavours,
server-side apply, watch replay and 410 Expired, graceful deletion, garbage collection, namespaces."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from localkube.testing import wait_until

pytestmark = pytest.mark.integration

SLEEP_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "owner", "labels": {"app": "x"}},
    "spec": {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "main", "image": "python:3.11", "command": ["sleep", "600"]}],
    },
}


def test_invalid_and_duplicate_objects_get_the_real_servers_messages(local_cluster: Any, run_kubectl: Any) -> None:
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}
    out = run_kubectl(local_cluster, "create", "-f", "-", stdin=json.dumps(bad))
    assert (out.returncode, out.stderr.strip()) == (
        1,
        'The Pod "x" is invalid: spec.containers[0].image: Required value',
    )
    badname = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "Bad_Name"}}
    out = run_kubectl(local_cluster, "create", "-f", "-", stdin=json.dumps(badname))
    assert out.stderr.startswith(
        'The Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123'
    )
    ok = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dup"}}
    assert run_kubectl(local_cluster, "create", "-f", "-", stdin=json.dumps(ok)).returncode == 0
    again = run_kubectl(local_cluster, "create", "-f", "-", stdin=json.dumps(ok))
    assert (
        again.stderr.strip()
        == 'Error from server (AlreadyExists): error when creating "STDIN": secrets "dup" already exists'
    )


def test_patch_flavours_and_pod_immutability(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=json.dumps(SLEEP_POD)).returncode == 0
    merge = run_kubectl(
        local_cluster, "patch", "pod", "owner", "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}'
    )
    assert merge.returncode == 0, merge.stderr
    jp = run_kubectl(
        local_cluster,
        "patch",
        "pod",
        "owner",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/j","value":"2"}]',
    )
    assert jp.returncode == 0, jp.stderr
    smp = run_kubectl(local_cluster, "label", "pod", "owner", "s=3")
    assert smp.returncode == 0, smp.stderr
    labels = local_cluster.get("pods", "owner")["metadata"]["labels"]
    assert labels == {"app": "x", "m": "1", "j": "2", "s": "3"}
    changed = json.loads(json.dumps(SLEEP_POD))
    changed["spec"]["containers"][0]["command"] = ["sleep", "1"]
    out = run_kubectl(local_cluster, "apply", "-f", "-", stdin=json.dumps(changed))
    assert out.returncode == 1
    assert 'The Pod "owner" is invalid: spec: Forbidden: pod updates may not change fields' in out.stderr
    image = run_kubectl(local_cluster, "set", "image", "pod/owner", "main=python:3.12")
    assert image.returncode == 0, image.stderr


def test_server_side_apply_upserts(local_cluster: Any, run_kubectl: Any) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n"
    first = run_kubectl(local_cluster, "apply", "--server-side", "-f", "-", stdin=cm)
    assert (first.returncode, first.stdout.strip()) == (0, "configmap/ssa serverside-applied"), first.stderr
    second = run_kubectl(local_cluster, "apply", "--server-side", "-f", "-", stdin=cm.replace("'1'", "'2'"))
    assert second.returncode == 0, second.stderr
    assert local_cluster.get("configmaps", "ssa")["data"] == {"a": "2"}
    assert {r.content_type for r in local_cluster.requests if r.method == "PATCH"} == {"application/apply-patch+yaml"}


def test_the_openapi_document_is_cached_by_its_hash_as_kube_openapi_serves_it(
    local_cluster: Any, run_kubectl: Any
) -> None:
    for i in range(3):
        cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cached-{i}}}\n"
        applied = run_kubectl(local_cluster, "apply", "--server-side", "-f", "-", stdin=cm)
        assert applied.returncode == 0, applied.stderr
    fetched = [r for r in local_cluster.requests if r.path == "/openapi/v3/api/v1"]
    assert len([r for r in local_cluster.requests if r.path == "/openapi/v3"]) == 3
    assert len(fetched) == 1  # then from kubectl's disk cache: the hash in the discovery did not change
    with urllib.request.urlopen(f"{local_cluster.url}/openapi/v3", timeout=10) as resp:
        url = local_cluster.url + json.loads(resp.read())["paths"]["api/v1"]["serverRelativeURL"]
    digest = url.rsplit("hash=", 1)[1]
    assert len(digest) == 128 and digest == digest.upper()  # SHA-512, upper-case hex
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Cache-Control"] == "public, immutable" and resp.headers["Etag"] == f'"{digest}"'
        assert resp.headers["Expires"].endswith(" UTC")
    with urllib.request.urlopen(f"{local_cluster.url}/openapi/v3/api/v1", timeout=10) as resp:
        assert resp.headers["Cache-Control"] is None  # no hash asked: nothing to keep
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as moved:
        opener.open(f"{local_cluster.url}/openapi/v3/api/v1?hash=0123", timeout=10)
    moved.value.close()
    assert moved.value.code == 301 and moved.value.headers["Location"] == f"/openapi/v3/api/v1?hash={digest}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_watch_replays_from_a_resource_version_and_expires_old_ones(local_cluster: Any, run_kubectl: Any) -> None:
    import urllib.request

    assert run_kubectl(local_cluster, "create", "configmap", "w1", "--from-literal=a=1").returncode == 0
    listed = json.loads(run_kubectl(local_cluster, "get", "configmaps", "-o", "json").stdout)
    rv = local_cluster.get("configmaps", "w1")["metadata"]["resourceVersion"]
    assert listed["items"][0]["metadata"]["resourceVersion"] == rv
    assert run_kubectl(local_cluster, "create", "configmap", "w2", "--from-literal=a=2").returncode == 0
    url = f"{local_cluster.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as resp:
        events = [json.loads(line) for line in resp.read().splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w2")]
    local_cluster.call(lambda store: store.compact())
    with urllib.request.urlopen(url, timeout=10) as resp:
        expired = [json.loads(line) for line in resp.read().splitlines()]
    assert expired[0]["type"] == "ERROR" and expired[0]["object"]["code"] == 410
    assert expired[0]["object"]["reason"] == "Expired"


def test_graceful_delete_then_garbage_collection_of_owned_objects(local_cluster: Any, run_kubectl: Any) -> None:
    pod = json.loads(json.dumps(SLEEP_POD))
    pod["spec"]["containers"][0]["command"] = [
        "sh",
        "-c",
        "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.1; done",
    ]
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    wait_until(lambda: local_cluster.get("pods", "owner")["status"]["phase"] == "Running")
    uid = local_cluster.get("pods", "owner")["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "owned",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": uid}],
        },
        "stringData": {"k": "v"},
    }
    assert run_kubectl(local_cluster, "create", "-f", "-", stdin=json.dumps(owned)).returncode == 0
    deleted = run_kubectl(local_cluster, "delete", "pod", "owner", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    terminating = local_cluster.get("pods", "owner")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 5 and terminating["metadata"]["deletionTimestamp"]
    wait_until(lambda: local_cluster.get("pods", "owner") is None)
    wait_until(lambda: local_cluster.get("secrets", "owned") is None)


def test_namespaces_scope_objects(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "create", "namespace", "team").returncode == 0
    assert run_kubectl(local_cluster, "-n", "team", "create", "configmap", "c", "--from-literal=a=1").returncode == 0
    assert run_kubectl(local_cluster, "get", "configmap", "c", "--ignore-not-found", "-o", "name").stdout == ""
    every = run_kubectl(local_cluster, "get", "configmaps", "-A", "-o", "name")
    assert every.stdout.split() == ["configmap/c"]
    nowhere = run_kubectl(local_cluster, "-n", "nope", "create", "configmap", "c", "--from-literal=a=1")
    assert nowhere.stderr.strip().endswith('namespaces "nope" not found')
    assert run_kubectl(local_cluster, "delete", "namespace", "team").returncode == 0
    assert local_cluster.get("namespaces", "team") is None
