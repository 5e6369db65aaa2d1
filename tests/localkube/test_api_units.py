"""Pure pieces of the API double: selectors, PATCH semantics, scheduler messages, protobuf bodies, the store."""

from __future__ import annotations

import pytest
from localkube.protobuf import decode
from localkube.resources import ApiError
from localkube.scheduler import DEFAULT_CAPACITY, parse_quantity, unschedulable_message
from localkube.selectors import parse_field_selector, parse_label_selector
from localkube.ssar import attributes
from localkube.store import Store
from localkube.tables import pod_status_text

from localkube import patch


@pytest.mark.parametrize(
    "selector, labels, expected",
    [
        ("app=a", {"app": "a"}, True),
        ("app==a", {"app": "b"}, False),
        ("app!=a", {}, True),
        ("env in (prod, dev)", {"env": "dev"}, True),
        ("env notin (prod,dev)", {"env": "dev"}, False),
        ("env notin (prod)", {}, True),
        ("gpu", {"gpu": ""}, True),
        ("!gpu", {"gpu": "1"}, False),
        ("app=a,!gpu,tier in (x)", {"app": "a", "tier": "x"}, True),
        ("", {"anything": "1"}, True),
    ],
)
def test_label_selector_grammar(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector)(labels) is expected


def test_bad_selectors_are_400s() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("app in (a")
    assert err.value.code == 400
    with pytest.raises(ApiError, match=r"field label not supported: spec\.image"):
        parse_field_selector("spec.image=x", "pods")
    assert parse_field_selector("involvedObject.name=p,type!=Normal", "events")(
        {"involvedObject": {"name": "p"}, "type": "Warning"}
    )


def test_strategic_merge_merges_lists_by_key_and_honours_directives() -> None:
    original = {
        "spec": {
            "containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}, {"name": "b"}],
            "tolerations": [{"key": "t"}],
            "finalizers": ["f1"],
        }
    }
    delta = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "b", "$patch": "delete"}],
            "tolerations": [{"key": "u"}],
            "finalizers": ["f2"],
        }
    }
    merged = patch.strategic_merge(original, delta)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
    ]
    assert merged["spec"]["tolerations"] == [{"key": "u"}]
    assert merged["spec"]["finalizers"] == ["f1", "f2"]


def test_merge_patch_deletes_with_null_and_json_patch_applies() -> None:
    assert patch.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    body = b'[{"op": "replace", "path": "/a", "value": 2}]'
    assert patch.apply_patch(patch.JSON_PATCH, {"a": 1}, body) == {"a": 2}
    with pytest.raises(ApiError) as err:
        patch.apply_patch(patch.JSON_PATCH, {"a": 1}, b'[{"op": "test", "path": "/a", "value": 5}]')
    assert err.value.code == 422


def test_an_apply_body_is_read_as_yaml_whether_or_not_it_is_json() -> None:
    assert patch.parse_body(patch.APPLY, b'{"metadata": {"name": "p", "labels": {"a": "1"}}}') == {
        "metadata": {"name": "p", "labels": {"a": "1"}}
    }
    # YAML flow style that json refuses, and block style: both as PyYAML reads them
    assert patch.parse_body(patch.APPLY, b"{metadata: {name: p}}") == {"metadata": {"name": "p"}}
    assert patch.parse_body(patch.APPLY, b"metadata:\n  name: p\n") == {"metadata": {"name": "p"}}
    with pytest.raises(ApiError) as err:
        patch.parse_body(patch.APPLY, b"{metadata: [")
    assert err.value.code == 400


def test_scheduler_lists_each_insufficient_resource_sorted() -> None:
    capacity = {
        k: parse_quantity(v) for k, v in {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "0", "pods": "110"}.items()
    }
    pod = {
        "spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "2Gi", "nvidia.com/gpu": "1"}}}]}
    }
    assert unschedulable_message(pod, capacity, []) == (
        "0/1 nodes are available: 1 Insufficient memory, 1 Insufficient nvidia.com/gpu. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    small = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1500m"}}}]}}
    assert unschedulable_message(small, capacity, []) is None
    assert unschedulable_message(small, capacity, [small]) == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    assert parse_quantity("8Gi") == 8 * 2**30 and parse_quantity("250m") == 0.25


def test_default_node_fits_an_upstream_shaped_job_pod() -> None:
    # Upstream's launcher requests (and limits) 1Gi of ephemeral storage for every job pod.
    capacity = {k: parse_quantity(v) for k, v in DEFAULT_CAPACITY.items()}
    pod = {"spec": {"containers": [{"resources": {"requests": {"ephemeral-storage": "1Gi", "cpu": "1"}}}]}}
    assert unschedulable_message(pod, capacity, []) is None


def _pb(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_access_review_attributes_are_read_from_protobuf() -> None:
    attrs = _pb(1, b"default") + _pb(2, b"create") + _pb(5, b"pods")
    review = _pb(2, _pb(1, attrs))
    body = b"k8s\x00" + _pb(1, _pb(1, b"authorization.k8s.io/v1")) + _pb(2, review)
    assert attributes(body, "application/vnd.kubernetes.protobuf") == {
        "namespace": "default",
        "verb": "create",
        "resource": "pods",
    }
    assert attributes(b"\xff\xff", "application/vnd.kubernetes.protobuf") == {}


def test_secret_from_protobuf() -> None:
    entry = _pb(1, b"k") + _pb(2, b"v")
    raw = _pb(1, _pb(1, b"s1")) + _pb(2, entry) + _pb(3, b"Opaque")
    body = b"k8s\x00" + _pb(1, _pb(1, b"v1") + _pb(2, b"Secret")) + _pb(2, raw)
    assert decode(body) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1"},
        "data": {"k": "dg=="},
        "type": "Opaque",
    }


def test_store_create_defaults_conflicts_and_history() -> None:
    store = Store(history=3)
    pod = store.create(
        "pods", "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    with pytest.raises(ApiError, match='pods "p" already exists'):
        store.create(
            "pods", "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )
    stale = dict(pod, metadata=dict(pod["metadata"], resourceVersion="1"))
    with pytest.raises(ApiError, match="the object has been modified"):
        store.replace("pods", "default", "p", stale)
    for i in range(5):
        store.create("configmaps", "default", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(ApiError) as err:
        store.events_after(int(pod["metadata"]["resourceVersion"]))
    assert err.value.code == 410


def test_pod_status_column_follows_kubectl() -> None:
    meta = {"name": "p"}
    waiting = {
        "metadata": meta,
        "status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
    }
    assert pod_status_text(waiting) == "ImagePullBackOff"
    init = {"metadata": meta, "status": {"phase": "Pending", "initContainerStatuses": [{"state": {"running": {}}}]}}
    assert pod_status_text(init) == "Init:0/1"
    failed = {
        "metadata": meta,
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"reason": "Error", "exitCode": 3}}}],
        },
    }
    assert pod_status_text(failed) == "Error"


def test_filtered_watch_reports_objects_entering_and_leaving_the_selection() -> None:
    from localkube.selectors import object_matcher
    from localkube.store import Event
    from localkube.streams import _translate

    match = object_matcher("pods", "app=a", None)
    inside = {"metadata": {"labels": {"app": "a"}}}
    outside = {"metadata": {"labels": {"app": "b"}}}
    assert _translate(Event(1, "MODIFIED", "pods", "ns", inside, outside), "pods", "ns", match) == ("ADDED", inside)
    assert _translate(Event(2, "MODIFIED", "pods", "ns", outside, inside), "pods", "ns", match) == ("DELETED", outside)
    assert _translate(Event(3, "MODIFIED", "pods", "other", inside, inside), "pods", "ns", match) is None
    assert _translate(Event(4, "ADDED", "secrets", "ns", inside), "pods", None, match) is None


def test_deleting_an_owner_collects_its_dependents() -> None:
    store = Store()
    owner = store.create("configmaps", "default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    store.create("secrets", "default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    store.create("secrets", "default", {"metadata": {"name": "free"}})
    store.delete("configmaps", "default", "owner")
    assert store.find("secrets", "default", "dep") is None
    assert store.find("secrets", "default", "free") is not None
