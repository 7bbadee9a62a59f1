"""``dispatch login`` and ``dispatch logout``: who the CLI is, kept in the current context.

Two ways to log in, as with Dispatch's CLI:

* ``dispatch login --service-account NAME --jwt-private-key FILE``: the key file must
  hold an RSA private key; one request (``GET /v1/version``, which needs a verified
  token and an existing organization) proves the pair works; then the account, as
  ``ORG/NAME`` of the organization it logged in under, and the key file's *path* are
  stored (the key stays where it is).
* ``dispatch login`` alone: the browser flow. A one-shot listener on
  ``127.0.0.1:<free port>/catcher`` waits while the browser goes through the server's
  OIDC login (``<api>/oidc/login``); once logged in, the server's ``/v1/iam/redirect``
  sends the browser back to the listener with the session cookie (``?cookie=``), which
  is checked with one request and stored. ``$BROWSER`` picks the browser (Python's
  ``webbrowser``); ``--no-browser`` only prints the address to open.

Each login replaces the context's other credentials and makes the organization it logged
in under the context's; ``dispatch logout`` removes the credentials (the key file itself
is left alone).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import click
import requests

from .. import config, options
from ..auth import issuer, load_private_key
from ..client import TIMEOUT, ApiError, DispatchClient, error_message

#: where the server sends the browser back to, on the local listener
CATCHER_PATH = "/catcher"
#: the server's browser login, and where it ends for the CLI (reference §2 "login")
LOGIN_PATH = "/oidc/login"
REDIRECT_PATH = "/v1/iam/redirect"

DONE_PAGE = (b"<!doctype html><title>Dispatch</title><p>Logged in to Dispatch. "
             b"You can close this window and go back to the terminal.</p>")


@click.command(cls=options.DispatchCommand)
@click.option("--timeout", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the browser login.")
@click.option("--no-browser", is_flag=True,
              help="Print the login address instead of opening a browser.")
@options.global_options()
@click.pass_context
def login(ctx: click.Context, timeout: int, no_browser: bool) -> None:
    """Log in: as a service account (--service-account NAME --jwt-private-key FILE), or
    through the browser (no flags).

    The credentials are stored in the config file's current context, replacing the
    ones it had.
    """
    account = options.given(ctx, "service_account") or os.environ.get(
        "DISPATCH_SERVICE_ACCOUNT")
    key = options.given(ctx, "jwt_private_key") or os.environ.get("DISPATCH_JWT_PRIVATE_KEY")
    # a token from the environment or a flag must not stand in for what is being checked
    context = dataclasses.replace(options.resolve_context(ctx), token="", cookie="",
                                  service_account="", jwt_private_key="")
    if account or key:
        _login_service_account(ctx, context, account, key)
    elif options.given(ctx, "token"):
        raise click.UsageError("a --token is sent as it is, never stored: give it to each "
                               "command, or log in with --service-account and "
                               "--jwt-private-key")
    else:
        _login_browser(ctx, context, timeout, no_browser)


@click.command(cls=options.DispatchCommand)
@options.global_options("config")
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Forget the current context's cookie, service account and key path."""
    path = options.config_file(ctx)
    document = config.read_file(path)
    if not config.current_context(document):
        click.echo("Not logged in: the config file has no current context", err=True)
        return
    name = config.write_credentials(path, config.Context(), cookie="", service_account="",
                                    jwt_private_key="")
    click.echo(f"Logged out (context {name!r})")


def _login_service_account(ctx: click.Context, context: config.Context,
                           account: str | None, key: str | None) -> None:
    if not (account and key):
        missing = "--jwt-private-key FILE" if account else "--service-account NAME"
        raise click.UsageError(f"a service account login needs {missing} too")
    key = os.path.abspath(os.path.expanduser(key))  # the context must work from anywhere
    load_private_key(key)  # a clear error before anything is sent
    # stored qualified: the account keeps signing as itself under --organization OTHER
    account = issuer(account, context.organization)
    context = dataclasses.replace(context, service_account=account, jwt_private_key=key)
    who = f"service account {account}"
    _verify(context, who)
    name = config.write_credentials(options.config_file(ctx), context,
                                    organization=context.organization, cookie="",
                                    service_account=account, jwt_private_key=key)
    click.echo(f"Logged in as {who} (context {name!r})")


def _login_browser(ctx: click.Context, context: config.Context, timeout: int,
                   no_browser: bool) -> None:
    with CookieCatcher() as catcher:
        next_path = f"{REDIRECT_PATH}?{urlencode({'redirect': catcher.url})}"
        url = f"{context.url}{LOGIN_PATH}?{urlencode({'next': next_path})}"
        _check_login_offered(context, url)
        if no_browser or not _open_browser(url):
            click.echo(f"Open this address in a browser to log in:\n  {url}", err=True)
        else:
            click.echo(f"Logging in through the browser (if none opened, visit {url})",
                       err=True)
        cookie = catcher.wait(timeout)
    if cookie is None:
        raise click.ClickException(f"no login within {timeout} s: the browser did not come "
                                   f"back to {catcher.url}")
    context = dataclasses.replace(context, cookie=cookie)
    _verify(context, "the browser session")
    name = config.write_credentials(options.config_file(ctx), context,
                                    organization=context.organization, cookie=cookie,
                                    service_account="", jwt_private_key="")
    click.echo(f"Logged in through the browser (context {name!r})")


def _verify(context: config.Context, who: str) -> None:
    """One request that needs valid credentials and an existing organization."""
    try:
        DispatchClient(context).version()
    except ApiError as exc:
        reason = exc.message.split("\n")[0]  # not the 401's "log in with…": this is it
        raise click.ClickException(f"login as {who} at {context.url} failed: {reason}") \
            from None


def _check_login_offered(context: config.Context, url: str) -> None:
    """Fail now, with the server's reason, rather than after the timeout, when the server
    does not start a browser login (none configured, an old server…)."""
    try:
        response = requests.get(url, allow_redirects=False, timeout=TIMEOUT,
                                verify=not context.insecure)
    except requests.RequestException:
        raise click.ClickException(
            f"cannot reach Dispatch at {context.url}: is `dispatch up` running?") from None
    if response.status_code >= 400:
        raise click.ClickException(
            f"Dispatch at {context.url} offers no browser login: "
            f"{error_message(response)}; log in with --service-account NAME "
            "--jwt-private-key FILE instead")


def _open_browser(url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


class CookieCatcher:
    """A one-shot HTTP listener on 127.0.0.1 that waits for ``GET /catcher?cookie=…``.

    Only the first request carrying a cookie counts; the server stops when the ``with``
    block ends.
    """

    def __init__(self) -> None:
        self._found: queue.Queue[str] = queue.Queue(maxsize=1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{CATCHER_PATH}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.1,),
                                        name="login-catcher", daemon=True)

    def __enter__(self) -> "CookieCatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait(self, timeout: float) -> str | None:
        """The cookie, or None if none came within ``timeout`` seconds."""
        try:
            return self._found.get(timeout=timeout)
        except queue.Empty:
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        found = self._found

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                cookie = (parse_qs(url.query).get("cookie") or [""])[0]
                if url.path != CATCHER_PATH or not cookie:
                    self._answer(404 if url.path != CATCHER_PATH else 400,
                                 b"not a Dispatch login")
                    return
                try:
                    found.put_nowait(cookie)
                except queue.Full:
                    pass  # a second visit: the first login stands
                self._answer(200, DONE_PAGE, "text/html; charset=utf-8")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # the cookie is in the query
                pass

        return Handler
