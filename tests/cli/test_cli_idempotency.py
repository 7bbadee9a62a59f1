"""``dispatch exec`` sends an Idempotency-Key and, after a dropped connection, sends the
request again with the same key: one run, whatever the network did."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from .test_cli_e2e import create_hello, hello_file  # noqa: F401 (fixture)


class DroppingProxy:
    """A TCP proxy in front of Dispatch that serves one request per connection and, for
    the first ``drops`` requests, forwards it, reads the answer, and closes the client's
    connection without sending it: the server did the work, the client saw nothing."""

    def __init__(self, upstream_port: int, drops: int):
        self.upstream_port, self.drops = upstream_port, drops
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    @staticmethod
    def _read_message(sock: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += sock.recv(65536)
        return head + b"\r\n\r\n" + body

    def _relay(self, client: socket.socket) -> None:
        with client:
            request = self._read_message(client)
            if not request:
                return
            self.requests.append(request)
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(request)
                response = self._read_message(upstream)
            if len(self.requests) <= self.drops:
                return  # dropped: the client's connection closes with no answer
            client.sendall(response)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(at_server, monkeypatch):
    proxy = DroppingProxy(at_server.port, drops=2)
    yield proxy
    proxy.close()


def test_exec_retries_a_dropped_request_with_the_same_key_and_one_run_starts(
        dispatch, at_server, hello_file, proxy, monkeypatch):  # noqa: F811
    name = create_hello(dispatch, hello_file)
    monkeypatch.setenv("DISPATCH_PORT", str(proxy.port))
    run = json.loads(dispatch("exec", name, "--input", '{"name": "Jon"}').stdout)
    sent = [r for r in proxy.requests if r.startswith(b"POST /v1/runs")]
    assert len(sent) == 3  # two dropped, the third answered
    keys = {line for r in sent for line in r.split(b"\r\n")
            if line.lower().startswith(b"idempotency-key:")}
    assert len(keys) == 1  # the same key each time
    monkeypatch.setenv("DISPATCH_PORT", str(at_server.port))
    runs = json.loads(dispatch("get", "runs", name, "-o", "json").stdout)
    assert [r["name"] for r in runs] == [run["name"]]


def test_each_exec_is_a_new_key(dispatch, at_server, hello_file):  # noqa: F811
    name = create_hello(dispatch, hello_file)
    first = json.loads(dispatch("exec", name).stdout)
    second = json.loads(dispatch("exec", name).stdout)
    assert first["name"] != second["name"]


def test_exec_with_a_run_name_starts_it_once(dispatch, at_server, hello_file):  # noqa: F811
    name = create_hello(dispatch, hello_file)
    first = json.loads(dispatch("exec", name, "--run-name", "once-only").stdout)
    second = json.loads(dispatch("exec", name, "--run-name", "once-only").stdout)
    assert first["name"] == second["name"] == "once-only"


def test_get_runs_pages_with_continue(dispatch, at_server, hello_file):  # noqa: F811
    name = create_hello(dispatch, hello_file)
    names = [json.loads(dispatch("exec", name).stdout)["name"] for _ in range(3)]
    first = dispatch("get", "runs", name, "--limit", "2", "-o", "json")
    assert [r["name"] for r in json.loads(first.stdout)] == names[::-1][:2]
    assert "--continue " in first.stderr
    token = first.stderr.split("--continue ", 1)[1].split()[0]
    rest = dispatch("get", "runs", name, "--limit", "2", "--continue", token, "-o", "json")
    assert [r["name"] for r in json.loads(rest.stdout)] == names[::-1][2:]
    assert "--continue" not in rest.stderr
