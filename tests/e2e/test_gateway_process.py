"""The gateway as its own process (the Procfile's ``gateway`` line) beside the ``api``
and ``worker`` processes, on a real etcd and a real Redis."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from engine.sources import pack

from .conftest import Processes, free_port, wait_for_status, wait_until

REDIS_DB = 12

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "uri": ctx["httpContext"]["uri"]}
'''


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def cluster(etcd_endpoint, tmp_path):
    redis.Redis(db=REDIS_DB).flushdb()
    api_port, gateway_port = free_port(), free_port()
    env = dict(os.environ,
               DISPATCH_STORE=f"etcd://{etcd_endpoint}",
               DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"),
               DISPATCH_API_BIND=f"127.0.0.1:{api_port}",
               DISPATCH_GATEWAY_BIND=f"127.0.0.1:{gateway_port}",
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(), DISPATCH_AUTH="off")
    procs = Processes(env, tmp_path)
    for name in ("api", "worker", "gateway"):
        procs.start(name)
    urls = {"api": f"http://127.0.0.1:{api_port}", "gateway": f"http://127.0.0.1:{gateway_port}"}
    try:
        wait_until(lambda: ready(urls["api"]), 60, what="the api process")
        wait_until(lambda: ready(urls["gateway"]), 60, what="the gateway process")
        yield urls, procs
    finally:
        procs.stop_all()


def test_the_gateway_process_runs_a_function_through_an_api(cluster, tmp_path):
    urls, procs = cluster
    org = "gw" + uuid.uuid4().hex[:8]
    headers = {"X-Dispatch-Org": org}
    path = tmp_path / "src" / "echo.py"
    path.parent.mkdir()
    path.write_text(ECHO)
    r = requests.post(f"{urls['api']}/v1/function", headers=headers, json={
        "name": "echo", "image": "python3", "handler": "echo.handle",
        "source": base64.b64encode(pack(str(path))).decode()})
    assert r.status_code == 201, r.text
    assert wait_for_status(urls["api"], "echo", org=org)["status"] == "READY", procs.logs()
    r = requests.post(f"{urls['api']}/v1/api", headers=headers, json={
        "name": "echo-api", "function": "echo", "uris": ["/echo"], "methods": ["POST"]})
    assert r.status_code == 200, r.text

    # the gateway process learns of the API through its store watch (once the worker
    # has synced it READY)
    def through_gateway():
        r = requests.post(f"{urls['gateway']}/{org}/echo", json={"name": "Jon"}, timeout=60)
        return r if r.status_code == 200 else None

    r = wait_until(through_gateway, 60, interval=0.2, what="the gateway to route the API")
    assert r.json() == {"input": {"name": "Jon"}, "uri": "/echo"}, procs.logs()
    # the gateway process serves no /v1
    assert requests.get(f"{urls['gateway']}/v1/function", headers=headers).status_code == 404
