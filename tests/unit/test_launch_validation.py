"""Bad launch input is refused with an error naming the field, the value and the fix — before any kubectl
command runs, so nothing is created (Secrets included) for a pod the API server would refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.domain import validate
from kubectl_launcher.domain.validate import InvalidLaunch
from tests.unit.test_launcher import FakeCluster, job_meta, make_ctx, make_launcher, site  # noqa: F401


@pytest.mark.parametrize("value", ["2", "500m", "0.5", "8Gi", "512Mi", "1e3", "100k", 3, 1.5, "0"])
def test_a_kubernetes_quantity_is_accepted(value: object) -> None:
    assert validate.quantity(value, "cpu") == str(value)


@pytest.mark.parametrize(
    "value, words",
    [
        ("-1", "is negative"),
        ("lots", "is not a Kubernetes quantity"),
        ("1Zi", "is not a Kubernetes quantity"),
        ("8 Gi", "is not a Kubernetes quantity"),
        (" 8Gi", "is not a Kubernetes quantity"),
        ("", "is not a Kubernetes quantity"),
        (True, "is not a Kubernetes quantity"),
        (None, "is not a Kubernetes quantity"),
    ],
)
def test_a_bad_quantity_names_the_field_and_the_value(value: object, words: str) -> None:
    with pytest.raises(InvalidLaunch) as error:
        validate.quantity(value, "launcher_spec['site-1']['k8s']['memory']")
    assert words in str(error.value)
    assert f"launcher_spec['site-1']['k8s']['memory'] = {value!r}" in str(error.value)


@pytest.mark.parametrize("value, count", [(0, 0), (2, 2), ("1", 1)])
def test_a_gpu_count_is_a_whole_number(value: object, count: int) -> None:
    assert validate.gpu_count(value, "num_of_gpus") == count


@pytest.mark.parametrize("value", ["two", -1, 1.5, True, "-1", None])
def test_a_bad_gpu_count_is_refused(value: object) -> None:
    with pytest.raises(InvalidLaunch, match="is not a GPU count"):
        validate.gpu_count(value, "num_of_gpus")


@pytest.mark.parametrize(
    "value",
    [
        "nvflare/job:2.9",
        "python",
        "localhost:5000/team/nvflare:2.9.0-cuda",
        "registry.example.com/a/b@sha256:" + "a" * 64,
        "Registry.Example.com/nvflare:latest",
    ],
)
def test_an_image_reference_is_accepted(value: str) -> None:
    assert validate.image(value, "image") == value


@pytest.mark.parametrize("value", ["nvflare/job 2.9", "nvflare/job:2.9\n", "NVFlare/Job", "", "a//b", 42, ":tag"])
def test_a_bad_image_reference_is_refused(value: object) -> None:
    with pytest.raises(InvalidLaunch, match="is not a container image reference"):
        validate.image(value, "image")


def test_a_security_context_is_a_mapping_of_known_fields() -> None:
    assert validate.security_context({"runAsNonRoot": True, "runAsUser": 1000}, "sc") == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
    }
    assert validate.security_context(None, "sc") is None
    with pytest.raises(InvalidLaunch, match="is not a pod security context"):
        validate.security_context("root", "sc")
    with pytest.raises(InvalidLaunch, match="does not know: runAsRoot"):
        validate.security_context({"runAsRoot": True}, "sc")


@pytest.mark.parametrize(
    "meta, words",
    [
        (job_meta(cpu="-1"), "launcher_spec['site-1']['k8s']['cpu'] = '-1' is negative"),
        (job_meta(memory="lots"), "launcher_spec['site-1']['k8s']['memory'] = 'lots' is not a Kubernetes quantity"),
        (job_meta(ephemeral_storage="1Zi"), "['ephemeral_storage'] = '1Zi' is not a Kubernetes quantity"),
        (job_meta(num_of_gpus="two"), "launcher_spec['site-1']['k8s']['num_of_gpus'] = 'two' is not a GPU count"),
        (job_meta(num_of_gpus=-1), "= -1 is not a GPU count"),
        (job_meta(image="nvflare/job 2.9"), "'nvflare/job 2.9' is not a container image reference"),
        (job_meta(image="nvflare/job:2.9\n"), "is not a container image reference"),
        ({**job_meta(), "job_id": "---"}, "job id '---' gives the pod name"),
        ({**job_meta(), "job_id": "j" * 5000}, "paths must stay under 4095 bytes"),
        ({**job_meta(), "job_id": "j" * 300}, "a name must stay under 255 bytes"),
    ],
)
def test_bad_launch_input_is_refused_before_any_kubectl_command(site: Path, meta: dict[str, Any], words: str) -> None:  # noqa: F811
    cluster = FakeCluster()
    with pytest.raises(InvalidLaunch) as error:
        make_launcher(cluster, site).launch_job(meta, make_ctx(site))
    assert words in str(error.value)
    assert cluster.calls == []  # no Secret written, no pod applied


def test_a_security_context_that_is_not_a_mapping_is_refused_before_any_kubectl_command(site: Path) -> None:  # noqa: F811
    cluster = FakeCluster()
    with pytest.raises(InvalidLaunch, match="the launcher's security_context argument = 'root'"):
        make_launcher(cluster, site, security_context="root").launch_job(job_meta(), make_ctx(site))
    assert cluster.calls == []
