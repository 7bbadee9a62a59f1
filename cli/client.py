"""The HTTP client of Dispatch's REST API: one method per endpoint.

Every request carries what the original CLI sends (``Accept: application/json``,
``X-Dispatch-Org``, and ``Authorization: Bearer`` or ``Cookie``), so a server cannot tell
the two CLIs apart. Failures become :class:`ApiError`, which click prints as
``Error: <message>`` and exits with status 1; a 401 adds how to log in.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import click
import requests

from .auth import LOGIN_HINT, ServiceAccountAuth, issuer, load_private_key
from .config import Context

#: (connect, read) seconds; the read timeout is generous because a blocking run waits for
#: the function, whose own timeout the server enforces
TIMEOUT = (5.0, 600.0)
#: how often ``run_function`` sends its request in all, and the pause before each retry
RUN_ATTEMPTS = 4
RUN_RETRY_PAUSE = 0.5
#: answers after which a run request is sent again (with the same Idempotency-Key)
RETRIED_STATUSES = (502, 503, 504)


class ApiError(click.ClickException):
    """The server refused a request, or could not be reached; ``status`` is the HTTP code."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class DispatchClient:
    """Talks to one Dispatch server as one organization, over a keep-alive session."""

    def __init__(self, context: Context):
        self.context = context
        self.base_url = context.url
        self.session = requests.Session()
        #: the headers of the last answer
        self.last_headers: Any = {}
        self.session.verify = not context.insecure
        self.session.headers.update(
            {"Accept": "application/json", "X-Dispatch-Org": context.organization}
        )
        if context.token:
            self.session.headers["Authorization"] = f"Bearer {context.token}"
        elif context.service_account or context.jwt_private_key:
            self.session.auth = service_account_auth(context)
        else:
            # the original CLI always sends a cookie; "unset" is its word for "none"
            self.session.headers["Cookie"] = context.cookie or "unset"
        if context.insecure:
            import urllib3  # only silenced when the user asked for unverified TLS

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # -- functions ---------------------------------------------------------------------

    def create_function(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/function``: the Function as stored (``INITIALIZED``)."""
        return self._call("POST", "/v1/function", body=body)

    def list_functions(self) -> list[dict[str, Any]]:
        """``GET /v1/function``."""
        return self._call("GET", "/v1/function")

    def get_function(self, name: str) -> dict[str, Any]:
        """``GET /v1/function/{name}``."""
        return self._call("GET", f"/v1/function/{_segment(name)}")

    def update_function(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/function/{name}``: the Function, ``UPDATING`` while its new version builds."""
        return self._call("PUT", f"/v1/function/{_segment(name)}", body=body)

    def delete_function(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/function/{name}``: the Function, now ``DELETING``."""
        return self._call("DELETE", f"/v1/function/{_segment(name)}")

    # -- runs --------------------------------------------------------------------------

    def run_function(self, name: str, body: dict[str, Any],
                     idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /v1/runs?functionName=``: the finished Run if blocking, else the new one.

        Sent with an ``Idempotency-Key`` (a fresh UUID unless given), and sent again with
        the same key after a dropped connection or a 502/503/504, up to
        :data:`RUN_ATTEMPTS` times: the server answers a repeat with the run the first
        request started, so a retry never starts a second run.
        """
        key = idempotency_key or str(uuid.uuid4())
        for attempt in range(1, RUN_ATTEMPTS + 1):
            last = attempt == RUN_ATTEMPTS
            try:
                return self._call("POST", "/v1/runs", params={"functionName": name},
                                  body=body, headers={"Idempotency-Key": key},
                                  retry=not last)
            except _Retry:
                time.sleep(RUN_RETRY_PAUSE * attempt)
        raise AssertionError("unreachable")

    def list_runs(
        self, function: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET /v1/runs[?functionName=][&limit=]``: newest first, at most ``limit``.

        The original CLI also sends ``since=-62135596800`` (Go's zero time); it means
        "no lower bound", which is what leaving it out means here.
        """
        return self.list_runs_page(function, limit)[0]

    def list_runs_page(
        self, function: str | None = None, limit: int | None = None, token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /v1/runs[?functionName=][&limit=][&continue=]``: a page of runs, newest
        first, and the next page's token (``X-Dispatch-Continue``), None on the last."""
        params = {"functionName": function, "limit": limit, "continue": token}
        runs = self._call("GET", "/v1/runs",
                          params={k: str(v) for k, v in params.items() if v} or None)
        return runs, self.last_headers.get("X-Dispatch-Continue")

    def list_dead_runs(self, function: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
        """``GET /v1/runs?dead=true``: the dead-letter list, most recently dead first."""
        params = {"dead": "true", "functionName": function, "limit": limit}
        return self._call("GET", "/v1/runs", params={k: str(v) for k, v in params.items() if v})

    def redrive_run(self, run: str) -> dict[str, Any]:
        """``POST /v1/runs/{run}/redrive``: the new run starting the dead one again."""
        return self._call("POST", f"/v1/runs/{_segment(run)}/redrive")

    def get_run(self, run: str, function: str | None = None) -> dict[str, Any]:
        """``GET /v1/runs/{run}[?functionName=]``."""
        params = {"functionName": function} if function else None
        return self._call("GET", f"/v1/runs/{_segment(run)}", params=params)

    # -- secrets -----------------------------------------------------------------------

    def create_secret(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/secret``: the Secret as stored, values included."""
        return self._call("POST", "/v1/secret", body=body)

    def list_secrets(self) -> list[dict[str, Any]]:
        """``GET /v1/secret``: every Secret of the organization, values included."""
        return self._call("GET", "/v1/secret")

    def get_secret(self, name: str) -> dict[str, Any]:
        """``GET /v1/secret/{name}``: the Secret, values included."""
        return self._call("GET", f"/v1/secret/{_segment(name)}")

    def update_secret(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/secret/{name}``: the Secret as stored, values included."""
        return self._call("PUT", f"/v1/secret/{_segment(name)}", body=body)

    def delete_secret(self, name: str) -> None:
        """``DELETE /v1/secret/{name}``: 204, no body."""
        self._call("DELETE", f"/v1/secret/{_segment(name)}")

    # -- base images and images --------------------------------------------------------

    def create_base_image(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/baseimage``: the BaseImage as stored (``INITIALIZED``)."""
        return self._call("POST", "/v1/baseimage", body=body)

    def list_base_images(self) -> list[dict[str, Any]]:
        """``GET /v1/baseimage``."""
        return self._call("GET", "/v1/baseimage")

    def get_base_image(self, name: str) -> dict[str, Any]:
        """``GET /v1/baseimage/{name}``."""
        return self._call("GET", f"/v1/baseimage/{_segment(name)}")

    def update_base_image(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/baseimage/{name}``: the BaseImage, ``UPDATING`` while checked again."""
        return self._call("PUT", f"/v1/baseimage/{_segment(name)}", body=body)

    def delete_base_image(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/baseimage/{name}``: the BaseImage, now ``DELETING``."""
        return self._call("DELETE", f"/v1/baseimage/{_segment(name)}")

    def create_image(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/image``: the Image as stored (``INITIALIZED``)."""
        return self._call("POST", "/v1/image", body=body)

    def list_images(self) -> list[dict[str, Any]]:
        """``GET /v1/image``."""
        return self._call("GET", "/v1/image")

    def get_image(self, name: str) -> dict[str, Any]:
        """``GET /v1/image/{name}``."""
        return self._call("GET", f"/v1/image/{_segment(name)}")

    def update_image(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/image/{name}``: the Image, ``UPDATING`` while it is rebuilt."""
        return self._call("PUT", f"/v1/image/{_segment(name)}", body=body)

    def delete_image(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/image/{name}``: the Image, now ``DELETING``."""
        return self._call("DELETE", f"/v1/image/{_segment(name)}")

    # -- server ------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """``GET /v1/version``: ``{version, commit, buildDate, …}``."""
        return self._call("GET", "/v1/version")

    def readiness(self, base_url: str | None = None) -> tuple[int, dict[str, Any]]:
        """``GET /readyz`` of this server (or of the process at ``base_url``: a worker's or
        a scheduler's health port): ``(status code, report)``; 503 is an answer, not an
        error. ApiError when nothing answers."""
        url = (base_url or self.base_url).rstrip("/") + "/readyz"
        try:
            response = self.session.get(url, timeout=(5.0, 10.0))
            return response.status_code, response.json()
        except requests.RequestException as exc:
            raise ApiError(f"nothing answers at {url}: {type(exc).__name__}") from None
        except ValueError:
            raise ApiError(f"{url} answered {response.status_code} without a readiness "
                           "report: is it a Dispatch process?") from None

    # -- events and subscriptions ------------------------------------------------------

    def emit_event(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """``POST /v1/event``: a CloudEvent already encoded (structured or binary mode);
        the emission ``{id, name, emitted-time, tags, event, duplicate}``."""
        return self._call("POST", "/v1/event", raw=(headers, body))

    def create_subscription(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/event/subscriptions``: the Subscription (``CREATING``)."""
        return self._call("POST", "/v1/event/subscriptions", body=body)

    def list_subscriptions(self) -> list[dict[str, Any]]:
        """``GET /v1/event/subscriptions``."""
        return self._call("GET", "/v1/event/subscriptions")

    def get_subscription(self, name: str) -> dict[str, Any]:
        """``GET /v1/event/subscriptions/{name}``."""
        return self._call("GET", f"/v1/event/subscriptions/{_segment(name)}")

    def update_subscription(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/event/subscriptions/{name}``: the Subscription (``UPDATING``)."""
        return self._call("PUT", f"/v1/event/subscriptions/{_segment(name)}", body=body)

    def delete_subscription(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/event/subscriptions/{name}``: the Subscription (``DELETING``)."""
        return self._call("DELETE", f"/v1/event/subscriptions/{_segment(name)}")

    # -- APIs of the gateway -----------------------------------------------------------

    def create_api(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/api``: the API (``CREATING``; Dispatch answers 200)."""
        return self._call("POST", "/v1/api", body=body)

    def list_apis(self, function: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/api[?function=F]``."""
        return self._call("GET", "/v1/api", params={"function": function} if function else None)

    def get_api(self, name: str) -> dict[str, Any]:
        """``GET /v1/api/{name}``."""
        return self._call("GET", f"/v1/api/{_segment(name)}")

    def update_api(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/api/{name}``: the API (``UPDATING``)."""
        return self._call("PUT", f"/v1/api/{_segment(name)}", body=body)

    def delete_api(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/api/{name}``: the API (``DELETING``)."""
        return self._call("DELETE", f"/v1/api/{_segment(name)}")

    # -- workflows and their executions ------------------------------------------------

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/workflow``: the Workflow (``READY``; a bad definition is a 400)."""
        return self._call("POST", "/v1/workflow", body=body)

    def list_workflows(self) -> list[dict[str, Any]]:
        """``GET /v1/workflow``."""
        return self._call("GET", "/v1/workflow")

    def get_workflow(self, name: str) -> dict[str, Any]:
        """``GET /v1/workflow/{name}``."""
        return self._call("GET", f"/v1/workflow/{_segment(name)}")

    def update_workflow(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/workflow/{name}``."""
        return self._call("PUT", f"/v1/workflow/{_segment(name)}", body=body)

    def delete_workflow(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/workflow/{name}``."""
        return self._call("DELETE", f"/v1/workflow/{_segment(name)}")

    def start_execution(self, workflow: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/executions?workflowName=``: the finished Execution if blocking, else
        the new one (or the existing one of that ``name``)."""
        return self._call("POST", "/v1/executions", params={"workflowName": workflow},
                          body=body)

    def list_executions(self, workflow: str | None = None, status: str | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
        """``GET /v1/executions[?workflowName=][&status=][&limit=]``: newest first."""
        params = {"workflowName": workflow, "status": status, "limit": limit}
        return self._call("GET", "/v1/executions",
                          params={k: str(v) for k, v in params.items() if v} or None)

    def get_execution(self, name: str) -> dict[str, Any]:
        """``GET /v1/executions/{name}``."""
        return self._call("GET", f"/v1/executions/{_segment(name)}")

    def execution_action(self, name: str, action: str) -> dict[str, Any]:
        """``POST /v1/executions/{name}/{cancel|suspend|resume}``."""
        return self._call("POST", f"/v1/executions/{_segment(name)}/{action}")

    # -- event drivers and their types -------------------------------------------------

    def create_driver_type(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/event/drivertypes``: the DriverType (``READY``)."""
        return self._call("POST", "/v1/event/drivertypes", body=body)

    def list_driver_types(self) -> list[dict[str, Any]]:
        """``GET /v1/event/drivertypes``: the built-in cron and webhook, then the org's."""
        return self._call("GET", "/v1/event/drivertypes")

    def get_driver_type(self, name: str) -> dict[str, Any]:
        """``GET /v1/event/drivertypes/{name}``."""
        return self._call("GET", f"/v1/event/drivertypes/{_segment(name)}")

    def update_driver_type(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/event/drivertypes/{name}``."""
        return self._call("PUT", f"/v1/event/drivertypes/{_segment(name)}", body=body)

    def delete_driver_type(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/event/drivertypes/{name}`` (409 while drivers use it)."""
        return self._call("DELETE", f"/v1/event/drivertypes/{_segment(name)}")

    def create_driver(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/event/drivers``: the Driver (``CREATING``)."""
        return self._call("POST", "/v1/event/drivers", body=body)

    def list_drivers(self) -> list[dict[str, Any]]:
        """``GET /v1/event/drivers``."""
        return self._call("GET", "/v1/event/drivers")

    def get_driver(self, name: str) -> dict[str, Any]:
        """``GET /v1/event/drivers/{name}`` (with its ingest url and token)."""
        return self._call("GET", f"/v1/event/drivers/{_segment(name)}")

    def update_driver(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/event/drivers/{name}``: the Driver (``UPDATING``)."""
        return self._call("PUT", f"/v1/event/drivers/{_segment(name)}", body=body)

    def delete_driver(self, name: str) -> dict[str, Any]:
        """``DELETE /v1/event/drivers/{name}``: the Driver (``DELETING``)."""
        return self._call("DELETE", f"/v1/event/drivers/{_segment(name)}")

    # -- identity: organizations, service accounts, policies --------------------------

    def create_iam(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/iam/{kind}`` (``organization``, ``serviceaccount``, ``policy``): 201."""
        return self._call("POST", f"/v1/iam/{_iam(kind)}", body=body)

    def list_iam(self, kind: str) -> list[dict[str, Any]]:
        """``GET /v1/iam/{kind}``."""
        return self._call("GET", f"/v1/iam/{_iam(kind)}")

    def get_iam(self, kind: str, name: str) -> dict[str, Any]:
        """``GET /v1/iam/{kind}/{name}``."""
        return self._call("GET", f"/v1/iam/{_iam(kind)}/{_segment(name)}")

    def update_iam(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/iam/{kind}/{name}``."""
        return self._call("PUT", f"/v1/iam/{_iam(kind)}/{_segment(name)}", body=body)

    def delete_iam(self, kind: str, name: str) -> dict[str, Any]:
        """``DELETE /v1/iam/{kind}/{name}``: the entity deleted."""
        return self._call("DELETE", f"/v1/iam/{_iam(kind)}/{_segment(name)}")

    # Later resources add their methods here, one per endpoint, all through _call.

    def _login_hint(self) -> str:
        """What to do about a 401, given the credentials that were sent."""
        auth = self.session.auth
        if not isinstance(auth, ServiceAccountAuth):
            return LOGIN_HINT
        signed = f"(signed as service account {auth.iss}"
        if "/" not in self.context.service_account:
            # NAME is looked up in the context's organization, which --organization moves
            signed += "; an account of another organization is given as ORG/NAME"
        return f"{signed})\n{LOGIN_HINT}"

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        raw: tuple[dict[str, str], bytes] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool = False,
    ) -> Any:
        """Send one request; the decoded JSON answer, ``None`` if it has no body.

        :param raw: ``(headers, bytes)`` to send as they are, instead of ``body`` as JSON.
        :param headers: more headers to send.
        :param retry: raise :class:`_Retry` (instead of an ApiError) when the connection
            drops or the answer is a 502/503/504: the caller sends it again.
        """
        url = self.base_url + path
        extra = {"json": body} if raw is None else {"headers": raw[0], "data": raw[1]}
        if headers:
            extra["headers"] = {**extra.get("headers", {}), **headers}
        try:
            response = self.session.request(
                method, url, params=params, timeout=TIMEOUT, **extra
            )
        except requests.exceptions.SSLError as exc:
            raise ApiError(
                f"TLS error talking to Dispatch at {self.base_url} ({exc}); "
                "--insecure skips certificate checks"
            ) from None
        except requests.ConnectionError:
            if retry:
                raise _Retry() from None
            raise ApiError(
                f"cannot reach Dispatch at {self.base_url}: is `dispatch up` running?"
            ) from None
        except requests.Timeout:
            raise ApiError(
                f"Dispatch at {self.base_url} did not answer {method} {path} in time"
            ) from None
        self.last_headers = response.headers
        if retry and response.status_code in RETRIED_STATUSES:
            raise _Retry()
        if response.status_code == 401:
            raise ApiError(f"{error_message(response)}\n{self._login_hint()}", 401)
        if response.status_code >= 400:
            raise ApiError(error_message(response), response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"{method} {path} answered {response.status_code} with a body that is "
                "not JSON"
            ) from None


class _Retry(Exception):
    """A request to send again: its connection dropped or the server was unavailable."""


#: the identity kinds, as their paths name them
IAM_KINDS = ("organization", "serviceaccount", "policy")


def service_account_auth(context: Context) -> ServiceAccountAuth:
    """Signing as the context's service account; a ClickException if half of it is
    missing or the key file is not an RSA private key."""
    if not context.jwt_private_key:
        raise click.ClickException(
            f"service account {context.service_account} needs its private key: "
            "--jwt-private-key FILE or DISPATCH_JWT_PRIVATE_KEY")
    if not context.service_account:
        raise click.ClickException(
            "a JWT private key needs the service account it belongs to: "
            "--service-account NAME or DISPATCH_SERVICE_ACCOUNT")
    return ServiceAccountAuth(issuer(context.service_account, context.organization),
                              load_private_key(context.jwt_private_key))


def _iam(kind: str) -> str:
    if kind not in IAM_KINDS:
        raise ValueError(f"not an identity kind: {kind}")
    return kind


def _segment(name: str) -> str:
    """``name`` as one path segment (a slash in it must not change the route)."""
    return quote(name, safe="")


def error_message(response: requests.Response) -> str:
    """Dispatch's ``{code, message}``, or the best description of a foreign error page."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    if message:
        return str(message)
    text = " ".join(response.text.split())[:200]
    return f"{response.status_code} {response.reason}" + (f": {text}" if text else "")
