"""A CONTRACT STAND-IN for Apache OpenWhisk's REST API, for tests. It is not OpenWhisk.

No OpenWhisk can run on these machines, so the ``openwhisk`` driver is tested against
this server, which follows OpenWhisk's documented API (``docs/rest_api.md``,
``docs/actions.md``, ``docs/reference.md``, ``docs/actions-new.md``) as far as the driver
uses it, and runs actions for real:

* HTTP Basic auth with ``uuid:key``: an unknown key is a 401; a namespace the key has no
  rights in (``_`` is the key's own) a 403, as OpenWhisk's entitlement check answers.
* ``/api/v1/namespaces/{ns}/actions[/{name}]``: PUT (``?overwrite=true``; 409 without it
  when the action exists), GET, DELETE (404 when missing). Names follow OpenWhisk's entity
  name rule (at most 256 characters); ``limits`` are validated (timeout 100-300000 ms,
  memory 128-512 MB: a 400 outside), code over 48 MB is a 413.
* POST on an action invokes it: params over 1 MB are a 413; ``?blocking=true`` waits for
  the lesser of the action's timeout and ``blocking_cap_s`` (OpenWhisk: 60 s), then
  answers the activation record (200 on success, 502 for an application or developer
  error, 500 for a whisk error; only ``response.result`` with ``result=true``), or a 202
  ``{"activationId"}`` after the cap. Non-blocking invokes answer 202 at once.
  ``rate_limit_per_minute`` turns invokes over it into 429s.
* ``GET activations/{id}`` (404 until the activation ends) and ``GET activations``.

Running an action: native kinds (``python:*``, ``nodejs:*``) start Dispatch's own function
server (``engine/runtimes``) without a handler, as a process, and ``POST /init`` it with
the action's code; ``blackbox`` actions run their image in a container through the Docker
Engine API, port 8080 published. Then ``POST /run`` per activation with OpenWhisk's
fields. Containers are kept warm and reused one activation at a time; an activation that
starts one gets an ``initTime`` annotation. Logs are read from the container's stdout
and stderr up to the ``XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX`` sentinels. A timeout
(init or run) destroys the container and is a developer error (status 2).

Test hooks: ``put_error`` (an ``(HTTP status, message)`` every PUT answers),
``fail_next_invokes`` (the next N invokes answer with a whisk internal error, status 3).
What it does not do: triggers, rules, packages, sequences, web actions, memory or log
limits, the real invoker's scheduling.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
NAME_RULE = re.compile(r"\A([A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_@ .-]*[A-Za-z0-9_@.-]+)\Z")
MAX_PARAMS = 1024 * 1024
MAX_CODE = 48 * 1024 * 1024
NATIVE_SERVERS = {"python": [sys.executable, "-I", os.path.join(ROOT, "engine/runtimes/python/server.py")],
                  "nodejs": ["node", os.path.join(ROOT, "engine/runtimes/nodejs/server.js")]}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class _Container:
    """One action container: a process (native kinds) or a podman container (blackbox)."""

    def __init__(self, action: dict[str, Any], docker_host: str | None):
        self.kind = action["exec"]["kind"]
        self.lines: dict[str, deque[str]] = {"stdout": deque(), "stderr": deque()}
        self.cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.cid: str | None = None
        self._client = None
        if self.kind == "blackbox":
            import docker

            self._client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=60).api
            host_config = self._client.create_host_config(port_bindings={8080: ("127.0.0.1", None)})
            self.cid = self._client.create_container(action["exec"]["image"], ports=[8080],
                                                     host_config=host_config)["Id"]
            self._client.start(self.cid)
            ports = self._client.inspect_container(self.cid)["NetworkSettings"]["Ports"]
            self.port = int(ports["8080/tcp"][0]["HostPort"])
            self._seen = {"stdout": 0, "stderr": 0}
        else:
            family = self.kind.split(":", 1)[0]
            self.port = _free_port()
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8",
                   "__OW_API_HOST": "http://127.0.0.1"}
            self.proc = subprocess.Popen(NATIVE_SERVERS[family] + ["--port", str(self.port), "--dir", "/tmp"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
                threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()
        if not _wait_port(self.port, 30):
            self.destroy()
            raise RuntimeError("the action container did not start listening")
        self.session = requests.Session()

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self.cond:
                self.lines[name].append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def post(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int, Any]:
        resp = self.session.post(f"http://127.0.0.1:{self.port}{path}", json=body, timeout=timeout_s)
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def take_logs(self, within: float = 3.0) -> list[str]:
        """This activation's log lines, up to each stream's next sentinel."""
        deadline = time.monotonic() + within
        out: dict[str, list[str]] = {}
        for name in ("stdout", "stderr"):
            lines: list[str] = []
            while True:
                if self.cid:
                    self._read_container(name)
                with self.cond:
                    while self.lines[name]:
                        line = self.lines[name].popleft()
                        if line == SENTINEL:
                            break
                        lines.append(line)
                    else:
                        if time.monotonic() < deadline:
                            self.cond.wait(0.05)
                            continue
                        lines.append("Logs might be missing: the action did not write the sentinel")
                    break
            out[name] = lines
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return [f"{stamp} {name}: {line}" for name in ("stdout", "stderr") for line in out[name]]

    def _read_container(self, name: str) -> None:
        data = self._client.logs(self.cid, stdout=name == "stdout", stderr=name == "stderr")
        lines = data.decode("utf-8", "replace").splitlines()
        with self.cond:
            self.lines[name].extend(lines[self._seen[name]:])
            self._seen[name] = len(lines)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.cid:
            try:
                self._client.remove_container(self.cid, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.cid = None


class ContractOpenWhisk:
    """The stand-in, serving on ``127.0.0.1`` in a thread: ``start()``, ``api_host``, ``stop()``.

    :param credentials: ``{"uuid:key": namespace}``
    """

    def __init__(self, credentials: dict[str, str], *, blocking_cap_s: float = 60.0,
                 rate_limit_per_minute: int | None = None, docker_host: str | None = None):
        self.credentials = dict(credentials)
        self.blocking_cap_s = blocking_cap_s
        self.rate_limit_per_minute = rate_limit_per_minute
        self.docker_host = docker_host
        self.put_error: tuple[int, str] | None = None
        self.fail_next_invokes = 0
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.activations: dict[str, dict[str, Any]] = {}
        self.invocations: deque[float] = deque()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for asserts
        self._warm: dict[tuple[str, str, str], list[_Container]] = {}
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.api_host = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "ContractOpenWhisk":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        with self._lock:
            containers = [c for pool in self._warm.values() for c in pool]
            self._warm.clear()
        for container in containers:
            container.destroy()

    # -- HTTP -------------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        status, body = self._handle(request)
        self.requests.append((request.method, request.path, status))
        return Response(json.dumps(body), status=status, mimetype="application/json")(environ, start_response)

    def _handle(self, request: Request) -> tuple[int, Any]:
        auth = request.authorization
        key = f"{auth.username}:{auth.password}" if auth and auth.type == "basic" else None
        if key not in self.credentials:
            return 401, {"error": "The supplied authentication is invalid.", "code": uuid.uuid4().hex}
        parts = [p for p in request.path.split("/") if p]
        if parts[:3] != ["api", "v1", "namespaces"]:
            return 404, {"error": "The requested resource does not exist."}
        if len(parts) == 3:
            return 200, [self.credentials[key]]
        namespace = self.credentials[key] if parts[3] == "_" else parts[3]
        if namespace != self.credentials[key]:
            return 403, {"error": "The supplied authentication is not authorized to access this resource."}
        collection, name = (parts[4] if len(parts) > 4 else None), ("/".join(parts[5:]) or None)
        if collection == "actions":
            return self._actions(request, namespace, name)
        if collection == "activations" and request.method == "GET":
            if name is None:
                records = [a for a in self.activations.values() if a["namespace"] == namespace]
                return 200, records[-int(request.args.get("limit", 30)):]
            record = self.activations.get(name)
            if record is None or record["namespace"] != namespace:
                return 404, {"error": "The requested resource does not exist."}
            return 200, record
        return 404, {"error": "The requested resource does not exist."}

    def _actions(self, request: Request, namespace: str, name: str | None) -> tuple[int, Any]:
        if name is None:
            if request.method != "GET":
                return 405, {"error": "The requested method is not allowed."}
            return 200, [self._public(a) for (ns, _), a in self.actions.items() if ns == namespace]
        if request.method == "PUT":
            return self._put(request, namespace, name)
        action = self.actions.get((namespace, name))
        if action is None:
            return 404, {"error": "The requested resource does not exist."}
        if request.method == "GET":
            return 200, self._public(action)
        if request.method == "DELETE":
            with self._lock:
                del self.actions[(namespace, name)]
                stale = self._warm.pop((namespace, name, action["version"]), [])
            for container in stale:
                container.destroy()
            return 200, self._public(action)
        if request.method == "POST":
            return self._invoke(request, action)
        return 405, {"error": "The requested method is not allowed."}

    def _put(self, request: Request, namespace: str, name: str) -> tuple[int, Any]:
        if self.put_error:
            return self.put_error[0], {"error": self.put_error[1]}
        if len(name) > 256 or not NAME_RULE.match(name):
            return 400, {"error": f"The request content was malformed:\nname [{name}] is not a valid entity name"}
        if request.content_length and request.content_length > MAX_CODE + (2 << 20):
            return 413, {"error": "The request content was malformed:\naction code is too large"}
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("exec"), dict):
            return 400, {"error": "The request content was malformed:\nexec is required"}
        exec_ = body["exec"]
        kind = exec_.get("kind")
        if kind == "blackbox":
            if not exec_.get("image"):
                return 400, {"error": "The request content was malformed:\nimage is required for blackbox"}
        elif isinstance(kind, str) and kind.split(":", 1)[0] in NATIVE_SERVERS:
            if not exec_.get("code"):
                return 400, {"error": "The request content was malformed:\ncode is required"}
            if exec_.get("binary"):
                try:
                    size = len(base64.b64decode(exec_["code"], validate=True))
                except (binascii.Error, ValueError):
                    return 400, {"error": "The request content was malformed:\ncode is not base64"}
                if size > MAX_CODE:
                    return 413, {"error": f"The request content was malformed:\naction code {size} bytes exceeds 48 MB"}
        else:
            return 400, {"error": f"The request content was malformed:\nkind '{kind}' not in Set(python:3, nodejs:20, blackbox)"}
        limits = {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1, **(body.get("limits") or {})}
        if not 100 <= limits["timeout"] <= 300000:
            return 400, {"error": f"The request content was malformed:\ntimeout {limits['timeout']} milliseconds is outside the allowed range [100 milliseconds, 300000 milliseconds]"}
        if not 128 <= limits["memory"] <= 512:
            return 400, {"error": f"The request content was malformed:\nmemory {limits['memory']} MB is outside the allowed range [128 MB, 512 MB]"}
        with self._lock:
            old = self.actions.get((namespace, name))
            if old is not None and request.args.get("overwrite") != "true":
                return 409, {"error": "resource already exists"}
            version = "0.0.1" if old is None else "0.0.%d" % (int(old["version"].rsplit(".", 1)[1]) + 1)
            action = {"namespace": namespace, "name": name, "version": version, "publish": False,
                      "exec": exec_, "limits": limits, "annotations": body.get("annotations") or [],
                      "parameters": body.get("parameters") or [], "updated": _now_ms()}
            self.actions[(namespace, name)] = action
            stale = self._warm.pop((namespace, name, old["version"]), []) if old else []
        for container in stale:
            container.destroy()
        return 200, self._public(action)

    @staticmethod
    def _public(action: dict[str, Any]) -> dict[str, Any]:
        exec_ = {k: v for k, v in action["exec"].items() if k != "code"}
        return {**action, "exec": {**exec_, "binary": bool(action["exec"].get("binary"))}}

    def _invoke(self, request: Request, action: dict[str, Any]) -> tuple[int, Any]:
        if request.content_length and request.content_length > MAX_PARAMS:
            return 413, {"error": "The request content was malformed:\nparameters exceed the allowed size"}
        params = request.get_json(silent=True) if request.data else {}
        if not isinstance(params, dict):
            return 400, {"error": "The request content was malformed:\nparameters must be a JSON object"}
        if self.rate_limit_per_minute is not None:
            now = time.monotonic()
            with self._lock:
                while self.invocations and now - self.invocations[0] > 60:
                    self.invocations.popleft()
                if len(self.invocations) >= self.rate_limit_per_minute:
                    return 429, {"error": f"Too many requests in the last minute (count: {len(self.invocations)}, "
                                          f"allowed: {self.rate_limit_per_minute})."}
                self.invocations.append(now)
        activation_id = uuid.uuid4().hex
        done = threading.Event()
        threading.Thread(target=self._activate, args=(action, params, activation_id, done), daemon=True).start()
        if request.args.get("blocking") != "true":
            return 202, {"activationId": activation_id}
        if not done.wait(min(self.blocking_cap_s, action["limits"]["timeout"] / 1000 * 2 + 5)):
            return 202, {"activationId": activation_id}
        record = self.activations[activation_id]
        code = {0: 200, 1: 502, 2: 502}.get(record["response"]["statusCode"], 500)
        return code, record["response"]["result"] if request.args.get("result") == "true" else record

    # -- running ----------------------------------------------------------------------

    def _activate(self, action: dict[str, Any], params: dict[str, Any], activation_id: str,
                  done: threading.Event) -> None:
        start = _now_ms()
        key = (action["namespace"], action["name"], action["version"])
        timeout_s = action["limits"]["timeout"] / 1000
        annotations = [{"key": "path", "value": f"{action['namespace']}/{action['name']}"},
                       {"key": "kind", "value": action["exec"]["kind"]},
                       {"key": "limits", "value": action["limits"]}]
        logs: list[str] = []
        container = None
        try:
            if self.fail_next_invokes > 0:
                self.fail_next_invokes -= 1
                raise _Outcome(3, {"error": "Failed to run container with image 'x'."})
            with self._lock:
                pool = self._warm.get(key) or []
                container = pool.pop() if pool else None
            annotations.append({"key": "waitTime", "value": _now_ms() - start})
            if container is None:
                init_start = _now_ms()
                try:
                    container = _Container(action, self.docker_host)
                except Exception as exc:  # noqa: BLE001 - the image, the engine
                    raise _Outcome(3, {"error": f"Failed to start the action container: {exc}"}) from None
                exec_ = action["exec"]
                init = {"value": {"name": action["name"], "main": exec_.get("main") or "main",
                                  "code": exec_.get("code"), "binary": bool(exec_.get("binary")), "env": {}}}
                try:
                    status, body = container.post("/init", init, timeout_s)
                except requests.Timeout:
                    raise _Outcome(2, {"error": "The action exceeded its time limits of "
                                                f"{action['limits']['timeout']} milliseconds during initialization."})
                annotations.append({"key": "initTime", "value": _now_ms() - init_start})
                if status != 200:
                    logs = container.take_logs()
                    error = body.get("error") if isinstance(body, dict) else None
                    raise _Outcome(2, {"error": error or "The action failed to initialize."})
            run = {"value": params, "namespace": action["namespace"],
                   "action_name": f"/{action['namespace']}/{action['name']}",
                   "activation_id": activation_id, "transaction_id": uuid.uuid4().hex,
                   "deadline": str(_now_ms() + int(timeout_s * 1000))}
            try:
                status, body = container.post("/run", run, timeout_s)
            except requests.Timeout:
                raise _Outcome(2, {"error": "The action exceeded its time limits of "
                                            f"{action['limits']['timeout']} milliseconds."})
            except requests.RequestException:
                raise _Outcome(2, {"error": "The action did not produce a valid response and exited unexpectedly."})
            logs = container.take_logs()
            if not isinstance(body, dict):
                raise _Outcome(2, {"error": "The action did not produce a valid JSON response."})
            if status != 200 or "error" in body:
                with self._lock:
                    self._warm.setdefault(key, []).append(container)
                container = None
                raise _Outcome(1, body if "error" in body else {"error": body})
            with self._lock:
                self._warm.setdefault(key, []).append(container)
            container = None
            raise _Outcome(0, body)
        except _Outcome as outcome:
            code, result = outcome.code, outcome.result
        if container is not None:  # failed: never reused
            if not logs:
                logs = container.take_logs(within=0.5)
            container.destroy()
        end = _now_ms()
        status = {0: "success", 1: "application error", 2: "action developer error", 3: "whisk internal error"}[code]
        self.activations[activation_id] = {
            "activationId": activation_id, "namespace": action["namespace"], "name": action["name"],
            "subject": "contract-subject", "version": action["version"], "publish": False,
            "start": start, "end": end, "duration": end - start, "logs": logs, "annotations": annotations,
            "response": {"status": status, "statusCode": code, "success": code == 0, "result": result},
        }
        done.set()


class _Outcome(Exception):
    def __init__(self, code: int, result: Any):
        super().__init__(code)
        self.code, self.result = code, result
