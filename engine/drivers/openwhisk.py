"""The ``openwhisk`` driver: function versions are Apache OpenWhisk actions, runs are
activations (``DISPATCH_DRIVER=openwhisk``).

Configuration: ``DISPATCH_OPENWHISK_API_HOST`` (``https://host[:port]``),
``DISPATCH_OPENWHISK_AUTH`` (``uuid:key``, sent as HTTP Basic auth, never logged),
``DISPATCH_OPENWHISK_NAMESPACE`` (default ``_``: the key's own namespace),
``DISPATCH_OPENWHISK_INSECURE`` (skip TLS verification), ``DISPATCH_OPENWHISK_MEMORY_MB``.

Guarantees, against OpenWhisk's REST API (``docs/rest_api.md``):

* ``prepare`` PUTs the version's action (``?overwrite=true``; what it holds:
  :mod:`.openwhisk_actions`). Versions have actions of their own, so an update deploys
  the new action before the function service retires the old one, and a failed deploy
  leaves the old one serving. Every refusal is a BuildError saying why (bad
  credentials, a namespace the key may not use, a name over the limit, code too large).
* ``run`` is one blocking invoke. The activation record becomes the Outcome: the result's
  payload, the logs split into stdout and stderr, status 1/2 (application / developer
  error, incl. timeouts and init failures) a FunctionError, 3 (whisk internal) and
  transport failures a SystemError; ``activationId``, ``initTimeMs`` (cold start),
  ``waitTimeMs`` and ``activationDurationMs`` are recorded on the run
  (``Outcome.extra``). A 202 (OpenWhisk's 60 s cap on blocking calls) is followed by
  polling the activation until the run's deadline. 429 is retried with exponential
  backoff within the deadline. A run whose parameters are over OpenWhisk's 1 MB is
  refused before anything is sent. An invocation is never re-sent after a transport
  failure (OpenWhisk runs at most once; the caller cannot know whether it ran).
* ``retire`` deletes the action (an action already gone is fine).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from ..errors import BuildError
from .base import Deployment, Driver, Outcome
from .openwhisk_actions import action_exec, action_name, limits

log = logging.getLogger("dispatch.driver.openwhisk")

#: OpenWhisk's cap on an activation's parameters (``docs/reference.md``)
MAX_PARAMETERS_BYTES = 1024 * 1024
#: how long past the action's timeout a run waits for its activation (init, queueing):
#: under the run service's claim grace (30 s by default), so that a run still waited for
#: is never taken for lost and started again
DEADLINE_GRACE_S = 20.0
_LOG_LINE = re.compile(r"^\S+\s+(stdout|stderr):\s?(.*)$", re.S)


def _error(kind: str, message: str, stacktrace: list[str] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "stacktrace": stacktrace or []}


class OpenWhiskDriver(Driver):
    """Runs function versions as OpenWhisk actions.

    :param api_host: OpenWhisk's API host, ``https://host[:port]`` (``http://`` too)
    :param auth: ``uuid:key``
    :param namespace: the namespace the actions live in (``_``: the key's default)
    :param memory_mb: every action's memory limit (clamped to 128-512 MB)
    :param kinds: the native kind per language (default ``python:3``, ``nodejs:20``), a dict
        or ``python3=python:3.11,nodejs=nodejs:20``
    :param poll_seconds: the first wait between polls of an activation after a 202
    """

    def __init__(self, home: str = "", *, api_host: str | None = None, auth: str | None = None,
                 namespace: str = "_", insecure: bool = False, memory_mb: int = 256,
                 kinds: dict[str, str] | str | None = None, poll_seconds: float = 0.5, **_ignored: Any):
        if not api_host:
            raise ValueError("the openwhisk driver needs DISPATCH_OPENWHISK_API_HOST")
        if not auth or ":" not in auth:
            raise ValueError("the openwhisk driver needs DISPATCH_OPENWHISK_AUTH as uuid:key")
        if "://" not in api_host:
            api_host = "https://" + api_host  # as wsk takes it
        self.api_host = api_host.rstrip("/")
        self.namespace = namespace or "_"
        self.memory_mb = memory_mb
        self.kinds = parse_kinds(kinds) if isinstance(kinds, str) else kinds
        self.poll_seconds = poll_seconds
        self._base = f"{self.api_host}/api/v1/namespaces/{quote(self.namespace, safe='')}"
        self._session = requests.Session()
        self._session.auth = tuple(auth.split(":", 1))  # type: ignore[assignment]
        self._session.verify = not insecure
        self._session.headers["User-Agent"] = "dispatch-openwhisk-driver"
        self._deployed: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"OpenWhiskDriver(api_host={self.api_host!r}, namespace={self.namespace!r})"

    # -- deploy -----------------------------------------------------------------------

    def prepare(self, deployment: Deployment) -> None:
        name = action_name(deployment)
        with self._lock:
            if name in self._deployed:
                return
        action_limits, notes = limits(deployment, self.memory_mb)
        for note in notes:
            log.warning("action.limit_clamped function=%s/%s %s", deployment.org, deployment.name, note)
        body = {
            "exec": action_exec(deployment, self.kinds),
            "limits": action_limits,
            "annotations": [
                {"key": "dispatch-function", "value": f"{deployment.org}/{deployment.name}"},
                {"key": "dispatch-version", "value": deployment.version},
                *([{"key": "dispatch-limits-clamped", "value": notes}] if notes else []),
            ],
        }
        url = f"{self._base}/actions/{quote(name, safe='')}"
        try:
            resp = self._session.put(url, params={"overwrite": "true"}, json=body, timeout=(10, 120))
        except requests.RequestException as exc:
            raise BuildError(f"OpenWhisk at {self.api_host} cannot be reached: {exc}") from None
        if resp.status_code != 200:
            raise BuildError(f"OpenWhisk refused the action {name}: {self._refusal(resp)}")
        with self._lock:
            self._deployed.add(name)
        log.info("action.deployed action=%s kind=%s", name, body["exec"]["kind"])

    def retire(self, deployment: Deployment) -> None:
        try:
            name = action_name(deployment)
        except BuildError:
            return  # never deployed
        with self._lock:
            self._deployed.discard(name)
        try:
            resp = self._session.delete(f"{self._base}/actions/{quote(name, safe='')}", timeout=(10, 60))
        except requests.RequestException as exc:
            log.warning("action.delete_failed action=%s error=%s", name, exc)
            return
        if resp.status_code not in (200, 404):
            log.warning("action.delete_failed action=%s error=%s", name, self._refusal(resp))
            return
        log.info("action.deleted action=%s", name)

    def close(self) -> None:
        self._session.close()

    # -- run --------------------------------------------------------------------------

    def run(self, deployment: Deployment, context: dict[str, Any], payload: Any) -> Outcome:
        try:
            # not prepared here: re-PUTting an action makes a new revision of it, whose
            # containers all start cold; a missing action (404) is deployed below
            name = action_name(deployment)
        except BuildError as exc:
            return Outcome(error=_error("FunctionError", exc.message))
        body = json.dumps({"context": context, "payload": payload}, allow_nan=False).encode()
        if len(body) > MAX_PARAMETERS_BYTES:
            return Outcome(error=_error("InputError", (
                f"the run's input and context are {len(body)} bytes of JSON, over OpenWhisk's "
                f"{MAX_PARAMETERS_BYTES} byte limit on an activation's parameters")))
        action_limits, _ = limits(deployment, self.memory_mb)
        deadline = time.monotonic() + action_limits["timeout"] / 1000 + DEADLINE_GRACE_S
        url = f"{self._base}/actions/{quote(name, safe='')}"
        backoff, redeployed = 0.25, False
        while True:
            remaining = deadline - time.monotonic()
            try:
                resp = self._session.post(url, params={"blocking": "true"}, data=body,
                                          headers={"Content-Type": "application/json"},
                                          timeout=(10, max(1.0, min(remaining, 75.0))))
            except requests.RequestException as exc:
                return Outcome(error=_error("SystemError", f"OpenWhisk at {self.api_host} failed during "
                                            f"the invocation of {name} (it may or may not have run): {exc}"))
            record = _json(resp)
            if resp.status_code == 202 and isinstance(record, dict) and record.get("activationId"):
                return self._poll(name, record["activationId"], deadline)
            if isinstance(record, dict) and isinstance(record.get("response"), dict):
                return outcome_of(record)  # 200, and 502/500 for failed activations
            if resp.status_code == 429 and time.monotonic() + backoff < deadline:
                log.info("run.rate_limited action=%s retry_in=%.2fs", name, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 8.0)
                continue
            if resp.status_code == 404 and not redeployed:
                # prepared by another process, or deleted behind Dispatch's back: deploy it, once
                with self._lock:
                    self._deployed.discard(name)
                try:
                    self.prepare(deployment)
                except BuildError as exc:
                    return Outcome(error=_error("SystemError", exc.message))
                redeployed = True
                continue
            what = "rate-limited until the run's deadline" if resp.status_code == 429 else self._refusal(resp)
            return Outcome(error=_error("SystemError", f"OpenWhisk did not run {name}: {what}"))

    def _poll(self, name: str, activation_id: str, deadline: float) -> Outcome:
        """The activation's record once OpenWhisk has it (404 until then)."""
        url = f"{self._base}/activations/{quote(activation_id, safe='')}"
        wait = self.poll_seconds
        log.info("run.polling action=%s activation=%s", name, activation_id)
        while time.monotonic() < deadline:
            try:
                resp = self._session.get(url, timeout=(10, 30))
            except requests.RequestException as exc:
                log.warning("run.poll_failed activation=%s error=%s", activation_id, exc)
                resp = None
            record = _json(resp) if resp is not None else None
            if resp is not None and resp.status_code == 200 and isinstance(record, dict) \
                    and isinstance(record.get("response"), dict):
                return outcome_of(record)
            if resp is not None and resp.status_code in (401, 403):
                return Outcome(error=_error("SystemError", f"OpenWhisk refused to show activation "
                                            f"{activation_id}: {self._refusal(resp)}"),
                               extra={"activationId": activation_id})
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            wait = min(wait * 1.5, 5.0)
        return Outcome(error=_error("SystemError", f"activation {activation_id} of {name} had no result "
                                    "by the run's deadline"), extra={"activationId": activation_id})

    def _refusal(self, resp: requests.Response) -> str:
        """What an error answer of OpenWhisk means, in words."""
        body = _json(resp)
        said = body.get("error") if isinstance(body, dict) else None
        said = f": {said}" if said else ""
        if resp.status_code == 401:
            return f"the credentials were refused (401{said}); check DISPATCH_OPENWHISK_AUTH"
        if resp.status_code == 403:
            return (f"the credentials may not use namespace {self.namespace!r} (403{said}); "
                    "check DISPATCH_OPENWHISK_NAMESPACE")
        if resp.status_code == 404:
            return f"not found in namespace {self.namespace!r} (404{said})"
        if resp.status_code == 413:
            return f"the request is over OpenWhisk's size limit (413{said})"
        return f"HTTP {resp.status_code}{said or ': ' + resp.text[:200]}"


def parse_kinds(text: str) -> dict[str, str]:
    """``python3=python:3.11,nodejs=nodejs:20`` as a dict; ValueError naming a bad part."""
    kinds = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        language, sep, kind = part.partition("=")
        if not sep or not language.strip() or not kind.strip():
            raise ValueError(f"DISPATCH_OPENWHISK_KINDS: {part!r} is not LANGUAGE=KIND")
        kinds[language.strip()] = kind.strip()
    return kinds


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def split_logs(lines: list[Any]) -> dict[str, list[str]]:
    """OpenWhisk's ``"<time> stdout: text"`` log lines, as Dispatch's two streams."""
    logs: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for line in lines or []:
        match = _LOG_LINE.match(str(line))
        if match:
            logs[match.group(1)].append(match.group(2))
        else:
            logs["stdout"].append(str(line))
    return logs


def outcome_of(record: dict[str, Any]) -> Outcome:
    """An activation record (``docs/actions.md``) as a run's Outcome."""
    response = record.get("response") or {}
    result = response.get("result")
    status = response.get("statusCode")
    annotations = {a.get("key"): a.get("value") for a in record.get("annotations") or []
                   if isinstance(a, dict)}
    extra: dict[str, Any] = {"activationId": record.get("activationId")}
    for key, field in (("initTime", "initTimeMs"), ("waitTime", "waitTimeMs")):
        if isinstance(annotations.get(key), (int, float)):
            extra[field] = annotations[key]
    if isinstance(record.get("duration"), (int, float)):
        extra["activationDurationMs"] = record["duration"]
    logs = split_logs(record.get("logs") or [])
    outcome = Outcome(logs=logs, cold_start_ms=extra.get("initTimeMs"), extra=extra)
    reply = result if isinstance(result, dict) else {}
    said = reply.get("error")
    if status == 0 or (status is None and response.get("success")):
        if isinstance(reply.get("context"), dict) and "payload" in reply:  # a blackbox server's reply
            outcome.payload = reply.get("payload")
            outcome.error = reply["context"].get("error")
            if not any(logs.values()) and isinstance(reply["context"].get("logs"), dict):
                outcome.logs = reply["context"]["logs"]
        else:
            outcome.payload = reply.get("payload") if "payload" in reply else result
        return outcome
    if status in (1, 2):
        if isinstance(said, dict) and said.get("type") and said.get("message") is not None:
            outcome.error = {"type": said["type"], "message": said["message"],
                             "stacktrace": list(said.get("stacktrace") or [])}
        else:
            message = said if isinstance(said, str) else json.dumps(said) if said is not None else response.get("status")
            kind = "application error" if status == 1 else "action developer error"
            outcome.error = _error("FunctionError", f"{message} (OpenWhisk: {kind})")
        return outcome
    message = said if isinstance(said, str) else json.dumps(said) if said is not None else "no result"
    outcome.error = _error("SystemError", f"OpenWhisk failed the activation (whisk internal error): {message}")
    return outcome


__all__ = ["OpenWhiskDriver", "outcome_of", "split_logs"]
