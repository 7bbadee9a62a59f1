"""A scripted browser for login tests against the test OIDC provider (tests/oidc).

:func:`browse` opens a URL in a :class:`requests.Session` and goes where a browser
would: it follows every redirect (cookies kept, on Dispatch and on the provider), and on
the provider's development pages signs in as ``login`` (any password) and consents.

As a script it stands in for a web browser, signing in as ``$OIDC_TEST_LOGIN``. Python's
:mod:`webbrowser` (which ``dispatch login`` uses) takes ``$BROWSER`` as one executable
called with the URL, so point it at a wrapper::

    #!/bin/sh
    exec python3 /path/to/tests/oidc_browser.py "$1"

It returns at once and browses from a detached child process, so that a caller that
waits for its "browser" to exit before serving its callback is not deadlocked; the
child's report goes to ``$OIDC_TEST_BROWSER_LOG`` when set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urljoin

import requests

MAX_STEPS = 20


def browse(session: requests.Session, url: str, login: str,
           stop_at: str | None = None) -> requests.Response:
    """The response the walk from ``url`` ends on: the first that is neither a redirect
    nor a provider form, or — with ``stop_at`` — the first redirect to a URL starting
    with it (not followed)."""
    response = session.get(url, allow_redirects=False, timeout=10)
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if stop_at and location.startswith(stop_at):
                return response
            response = session.get(location, allow_redirects=False, timeout=10)
            continue
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        if response.status_code != 200 or action is None or "/interaction/" not in response.url:
            return response
        if 'name="login"' in response.text:
            form = {"prompt": "login", "login": login, "password": "any"}
        else:
            form = {"prompt": "consent"}
        response = session.post(urljoin(response.url, action.group(1)), data=form,
                                allow_redirects=False, timeout=10)
    raise AssertionError(f"more than {MAX_STEPS} steps browsing from {url}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: oidc_browser.py URL", file=sys.stderr)
        return 2
    if os.environ.get("OIDC_TEST_BROWSER_CHILD") != "1":
        # webbrowser waits for its browser command to exit: browse from a child
        subprocess.Popen([sys.executable, os.path.abspath(__file__), argv[1]],
                         env={**os.environ, "OIDC_TEST_BROWSER_CHILD": "1"},
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return 0
    log_path = os.environ.get("OIDC_TEST_BROWSER_LOG")
    try:
        response = browse(requests.Session(), argv[1], os.environ.get("OIDC_TEST_LOGIN", "alice"))
        report = f"{response.status_code} {response.url}\n"
    except Exception as exc:  # noqa: BLE001 - a script: report whatever went wrong
        report = f"error {type(exc).__name__}: {exc}\n"
    if log_path:
        with open(log_path, "a") as log:
            log.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
