"""The web UI's gate, sessions, CSRF and pages through Flask's test client, on a real
engine over the memory store with authentication on (the browser flows are in
tests/ui/)."""

from __future__ import annotations

import re
import time

import pytest

from api.app import create_app
from engine.identity.bootstrap import bootstrap
from engine.identity.login_links import LoginLinks
from engine.identity.principal import Principal
from engine.settings import Settings
from tasks.actors import assemble
from tasks.broker import make_broker

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({}, home=str(home), store_url="memory://", auth="on",
                                 session_secret="x" * 48)
    engine = assemble(settings, make_broker("stub://"))
    bootstrap(engine.store, "default", "admin")
    engine.identity.organizations.create({"name": "acme"})
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def app(system):
    return create_app(system)


def sign_in(app, system, org="default", subject="admin", next_path=None):
    client = app.test_client()
    token = LoginLinks(system.store).issue(Principal(org, subject))
    query = f"token={token}" + (f"&next={next_path}" if next_path else "")
    response = client.get(f"/ui/login?{query}")
    assert response.status_code == 302, response.text
    return client


def csrf_of(client, path="/ui/secrets/") -> str:
    return CSRF.search(client.get(path).text).group(1)


def test_a_browser_without_a_session_is_sent_to_login_with_where_it_was(app):
    response = app.test_client().get("/ui/runs/?status=ERROR")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/login?next=/ui/runs/?status%3DERROR"


def test_the_rest_api_still_needs_credentials(app):
    assert app.test_client().get("/v1/function").status_code == 401


def test_a_login_link_works_once(app, system):
    token = LoginLinks(system.store).issue(Principal("default", "admin"))
    first, second = app.test_client(), app.test_client()
    assert first.get(f"/ui/login?token={token}").status_code == 302
    refused = second.get(f"/ui/login?token={token}")
    assert refused.status_code == 401 and "used already" in refused.text
    assert second.get("/ui/functions/").status_code == 302  # still not signed in


def test_an_expired_login_link_is_refused(app, system):
    token = LoginLinks(system.store, ttl_seconds=-1).issue(Principal("default", "admin"))
    response = app.test_client().get(f"/ui/login?token={token}")
    assert response.status_code == 401 and "has expired" in response.text


def test_an_expired_session_goes_to_login_and_back_where_it_was(app, system):
    client = sign_in(app, system)
    with client.session_transaction() as session:
        session["ui_principal"] = dict(session["ui_principal"], expires=time.time() - 1)
    response = client.get("/ui/functions/?x=1")
    assert response.headers["Location"] == "/ui/login?next=/ui/functions/?x%3D1"
    assert client.get(response.headers["Location"]).status_code == 200  # the login page
    token = LoginLinks(system.store).issue(Principal("default", "admin"))
    back = client.get(f"/ui/login?token={token}")
    assert back.headers["Location"] == "/ui/functions/?x=1"


def test_next_may_not_leave_the_ui(app, system):
    token = LoginLinks(system.store).issue(Principal("default", "admin"))
    response = app.test_client().get(f"/ui/login?token={token}&next=//evil.example/")
    assert response.status_code == 400


def test_the_session_cookie_is_httponly_and_samesite(app, system):
    token = LoginLinks(system.store).issue(Principal("default", "admin"))
    cookie = app.test_client().get(f"/ui/login?token={token}").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_forbid_inline_script_and_framing(app, system):
    headers = sign_in(app, system).get("/ui/functions/").headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("token, says", [(None, "missing"), ("stale", "stale")])
def test_a_post_without_this_sessions_csrf_token_is_400(app, system, token, says):
    client = sign_in(app, system)
    form = {"name": "nope", "values": '{"a": "b"}'}
    if token:
        form["csrf_token"] = token
    response = client.post("/ui/secrets/", data=form)
    assert response.status_code == 400 and f"security token is {says}" in response.text
    assert "nope" not in [s["name"] for s in system.secrets.list("default")]


def test_a_token_of_another_session_is_stale(app, system):
    other = csrf_of(sign_in(app, system))
    client = sign_in(app, system)
    response = client.post("/ui/secrets/", data={"csrf_token": other, "name": "n2",
                                                 "values": "{}"})
    assert response.status_code == 400


def test_secrets_show_names_never_values(app, system):
    client = sign_in(app, system)
    response = client.post("/ui/secrets/", data={"csrf_token": csrf_of(client),
                                                 "name": "db", "values": '{"pw": "hunter2"}'})
    assert response.status_code == 303
    page = client.get("/ui/secrets/").text
    assert "db" in page and "pw" in page and "hunter2" not in page


def test_bad_json_is_shown_beside_its_field(app, system):
    client = sign_in(app, system)
    response = client.post("/ui/secrets/", data={"csrf_token": csrf_of(client),
                                                 "name": "bad", "values": "{nope"})
    assert response.status_code == 400
    assert re.search(r'id="s-values-error" role="alert">Values is not valid JSON', response.text)


def test_a_principal_without_policies_is_not_allowed_anything(app, system):
    client = sign_in(app, system, subject="nobody")
    for path in ("/ui/", "/ui/functions/", "/ui/runs/", "/ui/secrets/", "/ui/events/",
                 "/ui/apis/", "/ui/images/", "/ui/workflows/", "/ui/live/run"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text


def test_no_switch_to_an_organization_without_a_global_policy(app, system):
    client = sign_in(app, system, org="acme", subject="boss")
    response = client.post("/ui/org", data={"csrf_token": csrf_of(client, "/ui/functions/"),
                                            "org": "default"})
    assert response.status_code == 403


def test_the_admin_switches_organization(app, system):
    client = sign_in(app, system)
    response = client.post("/ui/org", data={"csrf_token": csrf_of(client), "org": "acme",
                                            "next": "/ui/functions/"})
    assert response.headers["Location"] == "/ui/functions/"
    assert '<option value="acme" selected>' in client.get("/ui/functions/").text


def test_logout_needs_the_csrf_token_and_ends_the_session(app, system):
    client = sign_in(app, system)
    assert client.post("/ui/logout").status_code == 400
    assert client.post("/ui/logout", data={"csrf_token": csrf_of(client)}).status_code == 302
    assert client.get("/ui/functions/").status_code == 302


def test_the_gateway_never_answers_ui_paths(app, system):
    assert app.test_client().get("/ui/static/ui.js").status_code == 200


def test_live_updates_stream_a_kinds_changes_from_a_revision(app, system):
    from engine import entities as E

    client = sign_in(app, system)
    after = system.store.revision()
    system.store.add(E.new(E.RUN, "default", "run-1", functionName="f", status="READY",
                           input={"secret": "not in the stream"}))
    system.store.add(E.new(E.RUN, "acme", "run-2", functionName="g"))  # another org
    response = client.get(f"/ui/live/run?after={after}", buffered=False)
    assert response.mimetype == "text/event-stream"
    frames = (chunk.decode() for chunk in response.response)
    assert next(frames).startswith("retry: ")
    frame = next(frames)
    assert "event: change" in frame and '"name":"run-1"' in frame
    assert '"status":"READY"' in frame and "not in the stream" not in frame
    response.close()


def test_no_live_stream_of_secrets(app, system):
    assert sign_in(app, system).get("/ui/live/secret").status_code == 404


def test_with_auth_off_the_ui_needs_no_login(tmp_path):
    settings = Settings.from_env({}, home=str(tmp_path), store_url="memory://", auth="off")
    engine = assemble(settings, make_broker("stub://"))
    try:
        client = create_app(engine).test_client()
        response = client.get("/ui/functions/")
        assert response.status_code == 200 and "anonymous" in response.text
        assert "Log out" not in response.text
    finally:
        engine.close()


def test_a_function_from_an_uploaded_file(app, system):
    import base64
    import io

    from blueprints.ui.forms import single_file
    from engine import entities as E

    client = sign_in(app, system)
    code = b"def handle(ctx, payload):\n    return payload\n"
    response = client.post("/ui/functions/new", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(client), "name": "uploaded", "image": "python3",
        "handler": "echo.handle", "code": "", "upload": (io.BytesIO(code), "echo.py")})
    assert response.status_code == 303, response.text
    fn = system.functions.get("default", "uploaded")
    source = system.store.get(E.SOURCE, "default", fn["sourceURL"].removeprefix("es://"))
    assert single_file(source["data"]) == ("echo.py", code.decode())
    assert base64.b64decode(source["data"])[:2] == b"\x1f\x8b"  # a tar.gz


def test_a_function_form_error_is_shown_beside_its_field_and_nothing_is_stored(app, system):
    client = sign_in(app, system)
    response = client.post("/ui/functions/new", data={
        "csrf_token": csrf_of(client), "name": "badschema", "image": "python3",
        "handler": "x.handle", "code": "def handle(c, p): pass",
        "schema_in": '{"type": 7}'})
    assert response.status_code == 400
    assert re.search(r'id="schema_in-error" role="alert">schema.in is not a valid JSON Schema',
                     response.text)
    assert "badschema" not in [f["name"] for f in system.functions.list("default")]


def test_live_updates_resume_inside_a_revision_that_several_writes_share():
    """etcd commits writes together, under one revision: a stream cut between them
    resumes at the change after the browser's Last-Event-ID, not after the revision."""
    from engine.store.base import WatchEvent
    from blueprints.ui import live

    class Watch:
        def __init__(self, changes):
            self.changes = changes

        def __iter__(self):
            return iter(self.changes)

        def close(self):
            pass

    def key(name):
        return f"/dispatch/run/default/{name}"

    changes = [WatchEvent("put", key(n), rev, {"name": n, "status": "READY"})
               for n, rev in (("a", 5), ("b", 5), ("c", 5), ("d", 6))]
    ids = [line[4:] for frame in live._events(Watch(changes), live._run, start=5, sent=2)
           for line in frame.splitlines() if line.startswith("id: ")]
    assert ids == ["5.2", "6.0"]
    everything = [line[4:] for frame in live._events(Watch(changes), live._run)
                  for line in frame.splitlines() if line.startswith("id: ")]
    assert everything == ["5.0", "5.1", "5.2", "6.0"]


@pytest.mark.parametrize("sent, start", [
    ({"headers": {"Last-Event-ID": "5.1"}}, (5, 2)),  # two changes of revision 5 sent
    ({"headers": {"Last-Event-ID": "7"}}, (8, 0)),  # an id from before ids had a place
    ({"query_string": "after=9"}, (10, 0)),  # the page's starting point
    ({"headers": {"Last-Event-ID": "x.y"}}, (None, 0)),
    ({}, (None, 0)),
])
def test_live_updates_start_where_the_browser_left(app, sent, start):
    from blueprints.ui import live

    with app.test_request_context("/ui/live/run", **sent):
        assert live._start() == start
