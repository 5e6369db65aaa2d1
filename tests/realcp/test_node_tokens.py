"""Our node's service-account tokens (pure, no cluster): a TokenRequest the Node authorizer refuses because its
graph has not seen the pod's binding yet is asked again, as the kubelet's volume manager retries the mount;
any other refusal, or one that lasts, is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from localkube.controlplane import mirror
from localkube.controlplane.mirror import MirrorStore
from localkube.resources import ApiError

LAG = "node requested token bound to a pod scheduled on a different node"
POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
    "spec": {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]},
}


class RefusingApi:
    """Answers the first `refusals` TokenRequests with `code`, then with a token."""

    def __init__(self, refusals: int, code: int = 403) -> None:
        self.refusals, self.code, self.asked = refusals, code, 0

    async def request(self, method: str, url_path: str, body: Any = None, **_: Any) -> Any:
        self.asked += 1
        if self.asked <= self.refusals:
            raise ApiError(self.code, f'serviceaccounts "default" is forbidden: {LAG}', "Forbidden")
        return {"status": {"token": "the-token"}}


def fetch(api: RefusingApi) -> MirrorStore:
    store = MirrorStore(api, "localkube")  # type: ignore[arg-type]
    asyncio.run(store._fetch_tokens(POD))
    return store


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror, "TOKEN_RETRY_INTERVAL", 0.0)


def tokens(store: MirrorStore) -> list[str]:
    return [o["token"] for key, o in store.objects.items() if key[0] == mirror.TOKENS]


def test_a_token_the_node_authorizer_refuses_for_a_moment_is_asked_again() -> None:
    api = RefusingApi(refusals=3)
    assert tokens(fetch(api)) == ["the-token"]
    assert api.asked == 4


def test_a_token_refused_for_another_reason_is_not_asked_again() -> None:
    api = RefusingApi(refusals=1, code=404)
    assert tokens(fetch(api)) == []
    assert api.asked == 1


def test_a_refusal_that_lasts_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror, "TOKEN_RETRY_SECONDS", 0.0)
    api = RefusingApi(refusals=10)
    assert tokens(fetch(api)) == []
    assert api.asked == 1
