"""Names must match nvflare 2.9's byte for byte; labels must be valid Kubernetes label values."""

from __future__ import annotations

import random
import re
import string

import pytest
from nvflare.app_opt.job_launcher import k8s_launcher as upstream

from kubectl_launcher.domain import names

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_EDGE_CASES = [
    "",
    "-",
    "---",
    "___",
    "1234",
    "0",
    "site-1",
    "Site_1",
    "site#1",
    "site1",
    "server",
    "550e8400-e29b-41d4-a716-446655440000",
    "550E8400-E29B-41D4-A716-446655440000",
    "-leading-and-trailing-",
    "a" * 62 + "-b",
    "a" * 63 + "-",
    "x" * 300,
    "9" * 80,
    "ümlaut-sïte",
    "İstanbul",  # lower() turns one character into two
    "东京-站点",
    "\uff33\uff29\uff34\uff25\uff11",  # fullwidth "SITE1": not ASCII, so it vanishes
    "٣site",  # an Arabic-Indic digit: isdigit() is True for it, but it is filtered out first
    "site\x00\n\t name",
    "🙂-site-🙂",
    "a-" * 40,
    "-" * 10 + "7" + "-" * 10,
]


def _random_text(rng: random.Random) -> str:
    non_ascii = "\u00e4\u00df\u0130\u4e1c\u0663\uff33\u03a3\u03c2\U0001f642\u0301"
    alphabet = string.ascii_letters + string.digits + "-_.#/ " + "-" * 10 + non_ascii
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))


def _inputs(count: int = 3000) -> list[str]:
    rng = random.Random(4770)
    return _EDGE_CASES + [_random_text(rng) for _ in range(count)]


def test_uuid4_to_rfc1123_matches_upstream_for_every_generated_input() -> None:
    mismatches = [s for s in _inputs() if names.uuid4_to_rfc1123(s) != upstream.uuid4_to_rfc1123(s)]
    assert mismatches == []


@pytest.mark.parametrize("max_length", [5, 9, 10, 12, 20, 47, 63, 100])
def test_site_name_to_rfc1123_matches_upstream_for_every_generated_input(max_length: int) -> None:
    mismatches = [
        s
        for s in _inputs(800)
        if names.site_name_to_rfc1123(s, max_length) != upstream.site_name_to_rfc1123(s, max_length)
    ]
    assert mismatches == []


def test_site_name_to_rfc1123_default_length_matches_upstream() -> None:
    for s in _inputs(500):
        assert names.site_name_to_rfc1123(s) == upstream.site_name_to_rfc1123(s)


def test_job_pod_name_matches_upstream_for_every_generated_pair() -> None:
    rng = random.Random(4544)
    inputs = _inputs(600)
    for _ in range(3000):
        raw_job, site = rng.choice(inputs), rng.choice(inputs)
        for job_id in (raw_job, upstream.uuid4_to_rfc1123(raw_job)):
            assert names.job_pod_name(job_id, site) == upstream.job_pod_name(job_id, site), (job_id, site)


def test_study_dataset_volume_name_matches_upstream_for_every_generated_pair() -> None:
    rng = random.Random(4804)
    inputs = _inputs(600)
    for _ in range(2000):
        study, dataset = rng.choice(inputs), rng.choice(inputs)
        assert names.study_dataset_volume_name(study, dataset) == upstream.study_dataset_volume_name(study, dataset)


@pytest.mark.parametrize(
    ("site", "max_length", "expected"),
    [
        ("site-1", 47, "site-1-f505dccd"),
        ("server", 20, "server-b3eacd33"),
        ("1234", 20, "s1234-03ac6742"),
        ("___", 20, "site-bda25155"),
    ],
)
def test_site_names_documented_by_upstream(site: str, max_length: int, expected: str) -> None:
    assert names.site_name_to_rfc1123(site, max_length) == expected


def test_pod_name_of_a_uuid_job_is_a_valid_label() -> None:
    job_id = names.uuid4_to_rfc1123("550e8400-e29b-41d4-a716-446655440000")
    pod = names.job_pod_name(job_id, "site-1")
    assert pod == "j550e8400-e29b-41d4-a716-446655440000-site-1-f505dccd"
    assert _RFC1123_LABEL.match(pod)


def test_credential_secret_name_follows_nvflare_2_9() -> None:
    pod = "j550e8400-e29b-41d4-a716-446655440000-site-1-f505dccd"
    assert names.credential_secret_name(pod) == f"nvflare-cred-{pod}"


def test_credential_secret_name_stays_within_the_dns_subdomain_limit() -> None:
    name = names.credential_secret_name("p" * 300)
    assert len(name) == 253
    assert name.startswith("nvflare-cred-ppp")


@pytest.mark.parametrize("site", ["site-1", "Site_1", "", "x" * 300, "东京", "___", "1234"])
@pytest.mark.parametrize("job_id", ["550e8400-e29b-41d4-a716-446655440000", "", "-odd-", "J" * 200, "job_#1"])
def test_managed_labels_are_valid_label_values(site: str, job_id: str) -> None:
    labels = names.managed_labels(site, job_id)
    assert labels["app.kubernetes.io/managed-by"] == "kubectl-launcher"
    assert set(labels) == {"app.kubernetes.io/managed-by", "kubectl-launcher/site", "kubectl-launcher/job"}
    for value in labels.values():
        assert len(value) <= 63
        assert _LABEL_VALUE.match(value), value


def test_managed_labels_name_the_site_and_job_as_the_pod_name_does() -> None:
    labels = names.managed_labels("site-1", "550e8400-e29b-41d4-a716-446655440000")
    assert labels["kubectl-launcher/site"] == "site-1-f505dccd"
    assert labels["kubectl-launcher/job"] == "j550e8400-e29b-41d4-a716-446655440000"


def test_managed_labels_accept_an_already_sanitised_job_id() -> None:
    raw = "550e8400-e29b-41d4-a716-446655440000"
    assert names.managed_labels("s", raw) == names.managed_labels("s", names.uuid4_to_rfc1123(raw))
