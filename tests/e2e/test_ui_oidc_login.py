"""The web UI with the OIDC browser login, against the real test provider: the login
page offers it, the user's session carries it back to the page it came from, every page
enforces the user's policies, and logging out ends the provider session's use here."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin

import requests

from tests.oidc_browser import browse

# the provider and the server with browser login configured, shared with the API's tests
from .test_oidc_login import admin, allow, provider_and_server, server  # noqa: F401

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_the_ui_signs_in_through_the_provider_and_enforces_the_users_policies(server, admin):  # noqa: F811
    session = requests.Session()
    r = session.get(f"{server.url}/ui/functions/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/ui/login?next=/ui/functions/"
    page = session.get(urljoin(server.url, r.headers["Location"]))
    link = re.search(r'href="(/oidc/login\?next=[^"]+)"', page.text).group(1)
    assert link == "/oidc/login?next=%2Fui%2Ffunctions%2F"
    r = browse(session, urljoin(server.url, link), "uma")
    assert r.url == f"{server.url}/ui/functions/"
    assert r.status_code == 403 and "Not allowed" in r.text
    assert "user default/uma@example.test may not get function" in r.text
    allow(admin, "uma-reads-functions", ["uma@example.test"])
    for _ in range(50):  # policies reach the authorizer through a store watch
        r = session.get(f"{server.url}/ui/functions/")
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and "uma@example.test" in r.text
    assert session.get(f"{server.url}/ui/secrets/").status_code == 403  # only functions
    token = CSRF.search(r.text).group(1)
    r = session.post(f"{server.url}/ui/logout", data={"csrf_token": token},
                     allow_redirects=True)
    assert r.url.startswith(f"{server.url}/ui/login")
    r = session.get(f"{server.url}/ui/functions/", allow_redirects=False)
    assert r.status_code == 302
