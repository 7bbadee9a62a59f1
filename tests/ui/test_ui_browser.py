"""The web UI in a real browser, one flow per test, against a real ``dispatch up``."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from .conftest import NARROW, WIDE, Checked, assert_accessible

pytestmark = pytest.mark.timeout(240)

HELLO = '''\
def handle(ctx, payload):
    print("hello log line")
    return {"greeting": "Hello, %s" % payload.get("name")}
'''
FAILING = '''\
def check(value):
    raise ValueError("value %r is not acceptable" % (value,))

def handle(ctx, payload):
    print("about to fail")
    return check(payload)
'''
HOSTILE = '''\
def handle(ctx, payload):
    print("<script>window.__pwned = 1</script><b id='injected-log'>bold</b>")
    return {"html": "<img src=x onerror='window.__pwned = 2'><script>window.__pwned = 3</script>"}
'''
ON_EVENT = '''\
def handle(ctx, payload):
    return {"type": ctx["event"]["type"], "data": payload}
'''
NAME_SCHEMA = {"type": "object", "required": ["name"],
               "properties": {"name": {"type": "string"}}}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_function(ui: Checked, base: str, name: str, code: str,
                    schema_in: dict | None = None, shot: str | None = None) -> None:
    """Create a function through the editor and wait (live) until it is READY."""
    page = ui.page
    page.goto(f"{base}/ui/functions/")
    page.get_by_role("link", name="New function").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Handler").fill("fn.handle")
    page.get_by_label("Code", exact=True).fill(code)
    if schema_in is not None:
        page.get_by_label("Input schema (JSON Schema)").fill(json.dumps(schema_in))
    if shot:
        ui.check(shot)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(rf"/ui/functions/{name}$"))
    # the page reloads itself when the build settles (server-sent events)
    page.locator("dl.facts [data-status]").get_by_text("READY").wait_for(timeout=60_000)


def invoke(ui: Checked, base: str, name: str, payload: str) -> str:
    """Invoke from the function's page; the run's name."""
    page = ui.page
    if not page.url.endswith(f"/ui/functions/{name}"):
        page.goto(f"{base}/ui/functions/{name}")
    page.get_by_label("Input (JSON)").fill(payload)
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def test_the_printed_one_time_link_signs_in_once(context, dispatch_up, artifacts):
    assert dispatch_up.ui_url == f"{dispatch_up.url}/ui/"
    page = context.new_page()
    ui = Checked(page, artifacts, "login")
    page.goto(dispatch_up.link)
    assert page.url == f"{dispatch_up.url}/ui/"
    assert page.locator(".who").inner_text() == "admin"
    ui.check("overview")
    # the same link again, from another browser: refused
    other = context.browser.new_context(viewport=WIDE)
    try:
        second = other.new_page()
        response = second.goto(dispatch_up.link)
        assert response.status == 401
        assert "was used already" in second.locator(".problem").inner_text()
        assert_accessible(second, "login refused")
        second.screenshot(path=str(artifacts / "login-refused.png"))
    finally:
        other.close()


def test_an_expired_session_goes_to_login_and_back(context, dispatch_up, artifacts):
    page = context.new_page()
    ui = Checked(page, artifacts, "expired")
    page.goto(dispatch_up.issue_link("default", "admin"))
    context.clear_cookies()  # the session is gone, as after its expiry
    page.goto(f"{dispatch_up.url}/ui/runs/?status=ERROR")
    assert "/ui/login?next=" in page.url
    assert page.get_by_role("heading", name="Sign in to Dispatch").is_visible()
    ui.check("login")
    page.goto(dispatch_up.issue_link("default", "admin"))
    assert page.url == f"{dispatch_up.url}/ui/runs/?status=ERROR"


def test_create_a_function_from_the_editor(ui, dispatch_up):
    name = unique("hello")
    create_function(ui, dispatch_up.url, name, HELLO, NAME_SCHEMA, shot="editor")
    page = ui.page
    assert page.locator("dl.facts").get_by_text("fn.handle").is_visible()
    ui.check("function")
    page.goto(f"{dispatch_up.url}/ui/functions/")
    row = page.locator(f"tr[data-name='{name}']")
    assert "READY" in row.inner_text() and "python3" in row.inner_text()
    ui.check("functions")


def test_invoke_shows_output_and_logs(ui, dispatch_up):
    name = unique("greet")
    create_function(ui, dispatch_up.url, name, HELLO, NAME_SCHEMA)
    ui.check("function-before-invoke")
    invoke(ui, dispatch_up.url, name, '{"name": "Ada"}')
    page = ui.page
    assert json.loads(page.get_by_test_id("output").inner_text()) == {"greeting": "Hello, Ada"}
    assert json.loads(page.get_by_test_id("input").inner_text()) == {"name": "Ada"}
    assert "hello log line" in page.get_by_test_id("stdout").inner_text()
    assert page.locator("dl.facts [data-status]").inner_text() == "READY"
    ui.check("run")


def test_a_new_run_appears_live_in_the_runs_list(ui, context, dispatch_up):
    name = unique("live")
    create_function(ui, dispatch_up.url, name, HELLO)
    runs = ui.page
    runs.goto(f"{dispatch_up.url}/ui/runs/?function={name}")
    assert runs.locator("#runs-table tbody tr").count() == 0
    runs.evaluate("() => { window.__notReloaded = true; }")
    other = Checked(context.new_page(), ui.artifacts, "live-invoker")
    run = invoke(other, dispatch_up.url, name, '{"name": "live"}')
    row = runs.locator(f"#runs-table tbody tr[data-name='{run}']")
    row.wait_for()
    row.locator("[data-status]").get_by_text("READY").wait_for()
    assert runs.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    ui.check("runs-live")


def test_a_failing_run_shows_its_stack_trace(ui, dispatch_up):
    name = unique("fails")
    create_function(ui, dispatch_up.url, name, FAILING)
    invoke(ui, dispatch_up.url, name, '{"x": 1}')
    page = ui.page
    assert page.locator("dl.facts [data-status]").inner_text() == "ERROR"
    assert "FunctionError" in page.locator("#error-title").inner_text()
    trace = page.get_by_test_id("stacktrace").inner_text()
    assert "ValueError" in trace and "in check" in trace and "in handle" in trace
    assert "about to fail" in page.get_by_test_id("stdout").inner_text()
    ui.check("failing-run")
    page.goto(f"{dispatch_up.url}/ui/runs/?status=ERROR&function={name}")
    assert page.locator("#runs-table tbody tr").count() == 1
    ui.check("runs-errors")


def test_hostile_output_and_logs_render_as_text(ui, dispatch_up):
    name = unique("hostile")
    create_function(ui, dispatch_up.url, name, HOSTILE)
    invoke(ui, dispatch_up.url, name, '{"<b>": "<i>x</i>"}')
    page = ui.page
    assert "<script>window.__pwned = 1</script>" in page.get_by_test_id("stdout").inner_text()
    assert "<img src=x onerror=" in page.get_by_test_id("output").inner_text()
    assert '"<b>": "<i>x</i>"' in page.get_by_test_id("input").inner_text()
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("#injected-log").count() == 0
    assert page.locator("main img, main pre b, main pre i, main pre script").count() == 0
    ui.check("hostile-run")


def test_bad_input_is_shown_beside_the_field_and_nothing_is_sent(ui, context, dispatch_up):
    name = unique("strict")
    create_function(ui, dispatch_up.url, name, HELLO, NAME_SCHEMA)
    page = ui.page
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    field = page.get_by_label("Input (JSON)")
    error = page.locator("#invoke-input-error")

    field.fill('{"name": ')
    page.get_by_role("button", name="Run").click()
    assert error.is_visible() and "Not valid JSON" in error.inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    ui.check("invoke-invalid-json")

    field.fill('{"name": 5}')
    page.get_by_role("button", name="Run").click()
    assert "$.name: 5 is not of type 'string'" in error.inner_text()
    field.fill('{}')
    page.get_by_role("button", name="Run").click()
    assert "'name' is a required property" in error.inner_text()
    ui.check("invoke-schema-error")
    assert posts == [] and page.url.endswith(f"/ui/functions/{name}")

    # the server checks the same, for a browser without script: 400, the error beside
    # the field, and no run started
    csrf = page.get_attribute("body", "data-csrf")
    url = f"{dispatch_up.url}/ui/functions/{name}/invoke"
    for text, message in (('{"name": ', "Input is not valid JSON"),
                          ('{"name": 5}', "Input invalid against schema: $.name: 5 is not "
                                          "of type 'string'")):
        response = context.request.post(url, form={"csrf_token": csrf, "input": text},
                                        max_redirects=0)
        assert response.status == 400
        assert message in response.text().replace("&#39;", "'")
    page.goto(f"{dispatch_up.url}/ui/runs/?function={name}")
    assert page.locator("#runs-table tbody tr").count() == 0


def test_a_missing_or_stale_csrf_token_is_refused(ui, context, dispatch_up):
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/secrets/")
    url = f"{dispatch_up.url}/ui/secrets/"
    name = unique("s")
    form = {"name": name, "values": '{"k": "v"}'}
    missing = context.request.post(url, form=form, max_redirects=0)
    assert missing.status == 400 and "security token is missing" in missing.text()
    stale = context.request.post(url, form={**form, "csrf_token": "x" * 43}, max_redirects=0)
    assert stale.status == 400 and "security token is stale" in stale.text()
    page.reload()
    assert page.get_by_role("cell", name=name).count() == 0
    # the page's own form carries the token
    page.get_by_label("Name").fill(name)
    page.get_by_label("Values (JSON object").fill('{"password": "hunter2"}')
    page.get_by_role("button", name="Create secret").click()
    assert page.get_by_role("cell", name=name, exact=True).is_visible()
    assert "hunter2" not in page.content()
    ui.check("secrets")
    page.get_by_role("link", name=f"Delete {name}…").click()
    page.get_by_role("button", name=f"Yes, delete {name}").click()
    page.wait_for_url(re.compile(r"/ui/secrets/$"))
    assert page.get_by_role("cell", name=name, exact=True).count() == 0


def test_an_emitted_event_runs_the_subscribed_function(ui, dispatch_up):
    name = unique("listener")
    event_type = f"ui.test.{uuid.uuid4().hex[:6]}"
    create_function(ui, dispatch_up.url, name, ON_EVENT)
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/events/")
    page.get_by_label("Event type").fill(event_type)
    page.get_by_label("Function", exact=True).select_option(name)
    page.get_by_role("button", name="Subscribe").click()
    row = page.locator("table[data-live='subscription'] tr", has_text=event_type)
    row.locator("[data-status]").get_by_text("READY").wait_for()  # live
    page.get_by_label("Type", exact=True).fill(event_type)
    page.get_by_label("Data (JSON)").fill('{"answer": 42}')
    page.get_by_role("button", name="Emit").click()
    assert "emitted" in page.locator("#emitted").inner_text()
    ui.check("events")
    page.goto(f"{dispatch_up.url}/ui/runs/?function={name}")
    run_row = page.locator("#runs-table tbody tr").first
    run_row.wait_for()  # live, if the run started after the page loaded
    run_row.locator("[data-status]").get_by_text("READY").wait_for()
    run_row.get_by_role("link").first.click()
    assert json.loads(page.get_by_test_id("output").inner_text()) == {
        "type": event_type, "data": {"answer": 42}}
    assert json.loads(page.get_by_test_id("event").inner_text())["type"] == event_type
    ui.check("event-run")


def test_log_out(ui, dispatch_up):
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/functions/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/ui/login"))
    ui.check("logged-out")
    page.goto(f"{dispatch_up.url}/ui/functions/")
    assert "/ui/login?next=" in page.url


def test_a_principal_without_rights_sees_not_allowed(context, dispatch_up, artifacts):
    page = context.new_page()
    ui = Checked(page, artifacts, "not-allowed")
    admin = context.browser.new_context(viewport=WIDE)
    try:  # something of default's that must not leak
        admin_ui = Checked(admin.new_page(), artifacts, "not-allowed-admin")
        admin_ui.page.goto(dispatch_up.issue_link("default", "admin"))
        secret_name = unique("privy")
        create_function(admin_ui, dispatch_up.url, secret_name, HELLO)
    finally:
        admin.close()
    page.goto(dispatch_up.issue_link("default", "nobody"))
    for path in ("/ui/functions/", "/ui/runs/", f"/ui/functions/{secret_name}",
                 "/ui/secrets/", "/ui/live/run"):
        response = page.goto(f"{dispatch_up.url}{path}")
        assert response.status == 403, path
        assert page.get_by_role("heading", name="Not allowed").is_visible()
        assert "serviceaccount default/nobody may not get" in page.locator(".problem").inner_text()
        assert secret_name not in page.locator("main").inner_text()
    ui.check("functions")
    csrf = page.get_attribute("body", "data-csrf")
    switched = context.request.post(f"{dispatch_up.url}/ui/org",
                                    form={"csrf_token": csrf, "org": "acme"}, max_redirects=0)
    assert switched.status == 403


def test_update_a_function_then_delete_it_after_confirming(ui, dispatch_up):
    name = unique("versioned")
    create_function(ui, dispatch_up.url, name, HELLO)
    page = ui.page
    first = page.locator("table code").first.inner_text()
    page.get_by_role("link", name="Update").click()
    code = page.get_by_label("Code", exact=True)
    assert "hello log line" in code.input_value()  # the current source, to edit
    code.fill(HELLO.replace("Hello, %s", "Goodbye, %s"))
    ui.check("update")
    page.get_by_role("button", name="Update").click()
    page.wait_for_url(re.compile(rf"/ui/functions/{name}$"))
    page.locator("dl.facts [data-status]").get_by_text("READY").wait_for(timeout=60_000)
    assert page.locator("table code").first.inner_text() != first  # a new version
    invoke(ui, dispatch_up.url, name, '{"name": "v2"}')
    assert json.loads(page.get_by_test_id("output").inner_text()) == {"greeting": "Goodbye, v2"}
    page.goto(f"{dispatch_up.url}/ui/functions/{name}")
    page.get_by_role("link", name="Delete…").click()
    assert page.get_by_role("heading", name=f"Delete function {name}?").is_visible()
    ui.check("delete-confirmation")
    page.get_by_role("button", name=f"Yes, delete {name}").click()
    page.wait_for_url(re.compile(r"/ui/functions/$"))
    page.locator(f"tr[data-name='{name}']").wait_for(state="detached")  # live, when gone


def test_images_show_their_status_and_a_failed_build_its_log(ui, dispatch_up):
    base, good, bad = unique("base"), unique("img"), unique("broken")
    dispatch_up.api("POST", "/v1/baseimage", json={"name": base, "dockerUrl": "python3",
                                                   "language": "python3"})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/images/")
    page.locator(f"tr[data-name='{base}'] [data-status]").get_by_text("READY").wait_for()
    dispatch_up.api("POST", "/v1/image", json={"name": good, "baseImageName": base})
    dispatch_up.api("POST", "/v1/image", json={
        "name": bad, "baseImageName": base,
        "systemDependencies": {"packages": [{"name": "libxml2"}]}})
    page.reload()  # new rows come with a reload (the list updates the rows it shows)
    page.locator(f"tr[data-name='{good}'] [data-status]").get_by_text("READY").wait_for(
        timeout=60_000)
    page.locator(f"tr[data-name='{bad}'] [data-status]").get_by_text("ERROR").wait_for()
    ui.check("images")
    page.get_by_role("link", name=bad, exact=True).click()
    log = page.get_by_test_id("build-log").inner_text()
    assert "cannot install system packages (libxml2)" in log
    ui.check("image-failed")
    page.get_by_role("link", name=base, exact=True).click()
    assert page.get_by_role("heading", name=f"Base image {base}").is_visible()
    assert page.locator("main li", has_text=good).count() == 1  # used by
    ui.check("base-image")


def test_cron_drivers_show_their_next_fire_times(ui, dispatch_up):
    name = unique("hourly")
    dispatch_up.api("POST", "/v1/event/drivers", json={
        "name": name, "type": "cron",
        "config": [{"key": "schedule", "value": "15 * * * *"}]})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/events/")
    row = page.locator(f"table[data-live='driver'] tr[data-name='{name}']")
    times = row.locator("li").all_inner_texts()
    assert len(times) == 3 and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:15:00 UTC", t)
                                   for t in times), times
    assert times == sorted(times)
    ui.check("drivers")


def test_try_an_api_route_from_its_form(ui, dispatch_up):
    fn = unique("routed")
    create_function(ui, dispatch_up.url, fn, HELLO)
    api = unique("greeting")
    dispatch_up.api("POST", "/v1/api", json={"name": api, "function": fn,
                                             "uris": [f"/{api}"], "methods": ["POST"],
                                             "enabled": True})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/apis/")
    card = page.locator("section.card", has=page.get_by_role("heading", name=api))
    body = card.get_by_label("Body (JSON)")
    body.fill("{oops")
    card.get_by_role("button", name="Send").click()
    assert "Not valid JSON" in card.locator(".field-error").inner_text()
    body.fill('{"name": "gateway"}')
    card.locator("h2 [data-status]").get_by_text("READY").wait_for()  # live
    status = card.locator("[data-result-status]")
    for _ in range(20):  # READY is stored a moment before the route table has it
        status.evaluate("el => { el.textContent = ''; }")
        card.get_by_role("button", name="Send").click()
        card.locator("[data-result-status]", has_text=re.compile(r"\w")).wait_for()
        if status.inner_text().startswith("200"):
            break
        page.wait_for_timeout(100)
    assert status.inner_text().startswith("200")
    assert json.loads(card.locator("[data-result-body]").inner_text()) == {
        "greeting": "Hello, gateway"}
    ui.check("apis")


def test_switch_organization_shows_only_that_organizations_data(ui, dispatch_up):
    mine = unique("home")
    create_function(ui, dispatch_up.url, mine, HELLO)
    other = unique("acme")
    dispatch_up.api("POST", "/v1/iam/organization", json={"name": other})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/functions/")
    page.get_by_label("Organization").select_option(other)
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(re.compile(r"/ui/functions/$"))
    assert page.get_by_label("Organization").input_value() == other
    assert f"No functions in {other} yet." in page.locator("main").inner_text()
    assert mine not in page.locator("main").inner_text()
    assert page.goto(f"{dispatch_up.url}/ui/functions/{mine}").status == 404
    ui.check("other-org")
    page.get_by_label("Organization").select_option("default")
    page.get_by_role("button", name="Switch").click()  # back to the page it was on
    page.wait_for_url(re.compile(rf"/ui/functions/{mine}$"))
    assert page.locator("dl.facts [data-status]").inner_text() == "READY"


PAGES = ("/ui/", "/ui/functions/", "/ui/functions/new", "/ui/runs/", "/ui/images/",
         "/ui/secrets/", "/ui/events/", "/ui/apis/", "/ui/workflows/")


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1280", "390"])
def test_every_page_at_1280_and_390_px(ui, dispatch_up, size):
    page = ui.page
    page.set_viewport_size(size)
    name = unique("widths")
    create_function(ui, dispatch_up.url, name, FAILING, {"type": "object"})
    run = invoke(ui, dispatch_up.url, name, '{"a": [1, 2, 3]}')
    workflow = unique("wf")
    dispatch_up.api("POST", "/v1/workflow", json={"name": workflow, "definition": {
        "document": {"dsl": "1.0.0", "namespace": "ui", "name": workflow, "version": "1.0.0"},
        "do": [{"try-it": {"try": [{"call-it": {"call": name, "with": {"x": 1}}}],
                           "catch": {"do": [{"note": {"set": {"failed": True}}}]}}},
               {"done": {"set": {"ok": True}}}]}})
    execution = dispatch_up.api("POST", f"/v1/executions?workflowName={workflow}",
                                json={"input": {}, "blocking": True})["name"]
    width = size["width"]
    for path in PAGES + (f"/ui/functions/{name}", f"/ui/functions/{name}/edit",
                         f"/ui/functions/{name}/delete", f"/ui/runs/{run}",
                         f"/ui/workflows/{workflow}", f"/ui/workflows/executions/{execution}"):
        page.goto(f"{dispatch_up.url}{path}")
        label = path.strip("/").replace("/", "-").replace(name, "fn").replace(run, "run") \
            .replace(execution, "execution").replace(workflow, "wf")
        ui.check(f"{label or 'ui'}-{width}")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways at {width} px ({overflow} px)"


def test_start_a_workflow_and_watch_its_graph_complete(ui, dispatch_up):
    fn = unique("wfstep")
    create_function(ui, dispatch_up.url, fn, HELLO)
    workflow = unique("flow")
    definition = {
        "document": {"dsl": "1.0.0", "namespace": "ui", "name": workflow, "version": "1.0.0"},
        "input": {"schema": {"format": "json", "document": {
            "type": "object", "required": ["who"],
            "properties": {"who": {"type": "string"}}}}},
        "do": [
            {"both": {"fork": {"branches": [
                {"left": {"call": fn, "with": {"name": "${ .who }"}}},
                {"right": {"call": fn, "with": {"name": "${ .who + \"!\" }"}}}]}}},
            {"join": {"set": {"greetings": "${ [.[].greeting] }"}}}]}
    # created over the REST API: the UI shows workflows, it has no editor for them
    dispatch_up.api("POST", "/v1/workflow", json={"name": workflow, "definition": definition})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/workflows/{workflow}")
    assert page.locator(".node").count() == 4  # both, its two branches, join
    ui.check("workflow")
    field = page.get_by_label("Input (JSON)")
    field.fill('{"who": 7}')
    page.get_by_role("button", name="Start").click()  # checked in the browser first
    assert "$.who: 7 is not of type 'string'" in page.locator("#wf-input-error").inner_text()
    assert page.url.endswith(f"/ui/workflows/{workflow}")
    field.fill('{"who": "graph"}')
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/ui/workflows/executions/"))
    # the graph lights up live, and the page reloads itself once the execution ends
    page.locator("#execution-status").get_by_text("completed").wait_for(timeout=90_000)
    nodes = page.locator("#execution-graph .node")
    assert nodes.count() == 4
    for i in range(4):
        assert "status-completed" in nodes.nth(i).get_attribute("class"), i
    assert json.loads(page.get_by_test_id("execution-output").inner_text()) == {
        "greetings": ["Hello, graph", "Hello, graph!"]}
    assert page.locator("main table tbody tr").count() >= 4  # the history
    ui.check("execution")
    page.goto(f"{dispatch_up.url}/ui/workflows/")
    assert page.locator("main").get_by_text(workflow).count() >= 1
    ui.check("workflows")


def test_cancel_a_waiting_execution(ui, dispatch_up):
    workflow = unique("patient")
    dispatch_up.api("POST", "/v1/workflow", json={"name": workflow, "definition": {
        "document": {"dsl": "1.0.0", "namespace": "ui", "name": workflow, "version": "1.0.0"},
        "do": [{"nap": {"wait": {"minutes": 10}}}, {"after": {"set": {"woke": True}}}]}})
    page = ui.page
    page.goto(f"{dispatch_up.url}/ui/workflows/{workflow}")
    page.get_by_role("button", name="Start").click()  # no input: {}
    page.wait_for_url(re.compile(r"/ui/workflows/executions/"))
    page.locator("#execution-graph .node.status-running").wait_for()  # live: the nap began
    ui.check("waiting")
    page.get_by_role("button", name="Cancel execution").click()
    page.locator("#execution-status").get_by_text("cancelled").wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Cancel execution").count() == 0
    assert "status-cancelled" in page.locator("#execution-graph .node").first.get_attribute("class")
    ui.check("cancelled")
