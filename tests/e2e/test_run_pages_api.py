"""``GET /v1/runs`` a page at a time: ``?limit=&continue=``, the next page's token in
``X-Dispatch-Continue``, the body still Dispatch's plain list."""

from __future__ import annotations

from .test_embedded_api import api, hello  # noqa: F401 (fixtures)


def test_runs_are_paged_newest_first_with_a_continuation_header(api, hello):  # noqa: F811
    started = []
    for i in range(7):
        r = api.post(f"{api.base}/v1/runs?functionName={hello}", json={"name": f"{hello}-{i}"})
        assert r.status_code == 202, r.text
        started.append(r.json()["name"])
    pages, token = [], None
    while True:
        params = {"functionName": hello, "limit": 3, **({"continue": token} if token else {})}
        r = api.get(f"{api.base}/v1/runs", params=params)
        assert r.status_code == 200 and isinstance(r.json(), list)
        pages.append([run["name"] for run in r.json()])
        token = r.headers.get("X-Dispatch-Continue")
        if token is None:
            break
    assert pages == [started[::-1][0:3], started[::-1][3:6], started[::-1][6:]]
    # an old client: no limit, no token, the plain list of every run
    r = api.get(f"{api.base}/v1/runs", params={"functionName": hello})
    assert [run["name"] for run in r.json()] == started[::-1]
    assert "X-Dispatch-Continue" not in r.headers


def test_a_bad_continuation_token_is_a_400(api):  # noqa: F811
    r = api.get(f"{api.base}/v1/runs", params={"continue": "garbage"})
    assert r.status_code == 400 and "continue" in r.json()["message"]
