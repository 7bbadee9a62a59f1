"""``POST /v1/runs`` with an Idempotency-Key over real HTTP (embedded server): a client
that retries after a dropped connection, or sends the same request many times at once,
gets one run."""

from __future__ import annotations

import json
import socket
import threading
import uuid

import requests

from .conftest import wait_until
from .test_embedded_api import api, create_body, hello  # noqa: F401 (fixtures)


def runs_of(api, function: str) -> list[dict]:  # noqa: F811
    r = api.get(f"{api.base}/v1/runs", params={"functionName": function})
    assert r.status_code == 200, r.text
    return r.json()


def drop_after_sending(base: str, path: str, headers: dict, body: dict) -> None:
    """Send a request and close the connection without reading the answer."""
    host, port = base.split("//", 1)[1].split(":")
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in {
        **headers, "Host": f"{host}:{port}", "Content-Type": "application/json",
        "Content-Length": str(len(data))}.items())
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + data)


def test_a_retry_after_a_dropped_connection_returns_the_same_run(api, hello):  # noqa: F811
    key = str(uuid.uuid4())
    headers = {**api.headers, "Idempotency-Key": key}
    drop_after_sending(api.base, f"/v1/runs?functionName={hello}", headers,
                       {"input": {"name": "Jon"}})
    # the dropped request was served all the same: its run exists (or is being made)
    wait_until(lambda: runs_of(api, hello), what="the first request's run")
    r = api.post(f"{api.base}/v1/runs?functionName={hello}", headers={"Idempotency-Key": key},
                 json={"input": {"name": "Jon"}})
    assert r.status_code == 202, r.text
    assert r.headers["Idempotent-Replayed"] == "true"
    (run,) = runs_of(api, hello)
    assert r.json()["name"] == run["name"]
    done = wait_until(lambda: (lambda x: x if x["status"] == "READY" else None)(
        api.get(f"{api.base}/v1/runs/{run['name']}").json()), what="the run to finish")
    assert done["attempts"] == 1  # it ran once
    blocking = api.post(f"{api.base}/v1/runs?functionName={hello}",
                        headers={"Idempotency-Key": key}, json={"blocking": True})
    assert blocking.status_code == 202 and blocking.json()["status"] == "READY"
    assert len(runs_of(api, hello)) == 1


def test_concurrent_duplicate_posts_create_one_run(api, hello):  # noqa: F811
    key, answers = str(uuid.uuid4()), []
    barrier = threading.Barrier(12)

    def post():
        with requests.Session() as session:
            session.headers.update({**api.headers, "Idempotency-Key": key})
            barrier.wait()
            answers.append(session.post(f"{api.base}/v1/runs?functionName={hello}",
                                        json={"input": {"name": "Arya"}}))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [202] * 12
    assert len({a.json()["name"] for a in answers}) == 1
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == [""] + ["true"] * 11
    assert len(runs_of(api, hello)) == 1


def test_a_blocking_replay_answers_200_with_the_finished_run(api, hello):  # noqa: F811
    key = str(uuid.uuid4())
    first = api.post(f"{api.base}/v1/runs?functionName={hello}", headers={"Idempotency-Key": key},
                     json={"input": {"name": "Sansa"}, "blocking": True})
    again = api.post(f"{api.base}/v1/runs?functionName={hello}", headers={"Idempotency-Key": key},
                     json={"input": {"name": "Sansa"}, "blocking": True})
    assert first.status_code == again.status_code == 200
    assert again.json()["name"] == first.json()["name"] and again.json()["status"] == "READY"
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"


def test_a_client_chosen_run_name_starts_one_run(api, hello):  # noqa: F811
    name = f"run-{uuid.uuid4().hex[:8]}"
    first = api.post(f"{api.base}/v1/runs?functionName={hello}", json={"name": name})
    again = api.post(f"{api.base}/v1/runs?functionName={hello}", json={"name": name})
    assert first.status_code == again.status_code == 202
    assert first.json()["name"] == again.json()["name"] == name
    assert len(runs_of(api, hello)) == 1


def test_a_bad_key_is_a_400_naming_the_header(api, hello):  # noqa: F811
    r = api.post(f"{api.base}/v1/runs?functionName={hello}", headers={"Idempotency-Key": "x" * 256},
                 json={})
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["message"]
