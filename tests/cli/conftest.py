"""Fixtures for the CLI's tests: an isolated environment, a CLI runner, and servers.

Two kinds of server: :class:`RecordingServer`, a real HTTP server that answers from a
script and records what the CLI put on the wire; and the real embedded Dispatch
(``api.embedded.start_embedded``) for end-to-end tests.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from cli.main import cli


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No DISPATCH_* from the caller's shell; config and ~ point into tmp_path."""
    for var in list(os.environ):
        if var.startswith("DISPATCH_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISPATCH_CONFIG", str(tmp_path / "config.json"))
    return tmp_path


class Dispatch:
    """Runs ``dispatch ARGS…`` in-process and checks the exit code."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: Any, expect: int | None = 0) -> Result:
        result = self.runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (
                f"dispatch {' '.join(map(str, args))} exited {result.exit_code}, "
                f"expected {expect}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: Any) -> Any:
        """Run with ``-o json`` and decode stdout."""
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture
def dispatch() -> Dispatch:
    return Dispatch()


class Request(NamedTuple):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class RecordingServer:
    """An HTTP server that answers each ``(method, path)`` from a queue of responses.

    The last queued response for a route is repeated; unknown routes get Dispatch's 404.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._answers: dict[tuple[str, str], deque] = defaultdict(deque)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, method: str, path: str, *responses: tuple[int, Any]) -> None:
        """Queue ``(status, json_body)`` responses for ``method path``."""
        self._answers[(method, path)].extend(responses)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _respond(self, method: str, path: str) -> tuple[int, Any]:
        queue = self._answers.get((method, path))
        if not queue:
            return 404, {"code": 404, "message": f"no route {method} {path}"}
        return queue.popleft() if len(queue) > 1 else queue[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.requests.append(Request(
                    self.command, url.path, parse_qs(url.query), dict(self.headers),
                    json.loads(raw) if raw else None,
                ))
                status, body = server._respond(self.command, url.path)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        return Handler


@pytest.fixture
def recorder(monkeypatch):
    """A RecordingServer that the CLI points at through DISPATCH_PORT."""
    server = RecordingServer()
    monkeypatch.setenv("DISPATCH_PORT", str(server.port))
    yield server
    server.stop()


def embedded(tmp_path_factory, **overrides):
    """Run a real embedded Dispatch for a module's tests (a generator for a fixture to
    ``yield from``); ``overrides`` are Settings fields."""
    from api.embedded import start_embedded

    running = start_embedded(home=str(tmp_path_factory.mktemp("home")), host="127.0.0.1",
                             port=0, **overrides)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An embedded Dispatch with authentication off (said explicitly: these tests are
    about the other commands), shared by a module's tests (modules may define their own)."""
    yield from embedded(tmp_path_factory, auth="off")


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """An embedded Dispatch with authentication on (the default) and its admin key."""
    for running in embedded(tmp_path_factory):
        assert running.admin_key_path and os.path.exists(running.admin_key_path)
        yield running


@pytest.fixture
def at_server(server, monkeypatch):
    """Point the CLI at the embedded server through the environment."""
    monkeypatch.setenv("DISPATCH_PORT", str(server.port))
    return server


@pytest.fixture
def own_org(at_server, monkeypatch):
    """A fresh organization for this test: it sees no entity another test made, so fixed
    names (those of examples/seed.yaml) can be created in every test."""
    org = f"org-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("DISPATCH_ORGANIZATION", org)
    return org
