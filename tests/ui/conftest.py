"""Browser tests of the web UI: Debian's Chromium driven by Playwright, against a real
``dispatch up`` (a subprocess, auth on) signed in through the one-time link it prints.

Needs ``/usr/bin/chromium`` and ``tests/ui/node_modules/axe-core`` (both installed by
``deploy/dev-services.sh``); screenshots go under ``test-artifacts/ui/`` (printed at the
start of the run). Every page a test visits is checked with axe-core: no serious or
critical violations.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "tests" / "ui" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
LINK = re.compile(r"Web UI login .*: (http://\S+/ui/login\?token=\S+)")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")
if not os.path.exists(CHROMIUM) or not AXE.exists():
    pytest.skip(f"needs {CHROMIUM} and {AXE}: run deploy/dev-services.sh",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DispatchUp:
    """``dispatch up`` in a subprocess; ``link`` is the one-time login link it printed."""

    def __init__(self, home: Path, config: Path):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        env.update(DISPATCH_CONFIG=str(config), HOME=str(home.parent),
                   DISPATCH_RECONCILE_SECONDS="0.5",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--port", str(self.port), "--home",
             str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=str(ROOT), start_new_session=True)
        self.output: list[str] = []
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        self.link = self.ui_url = None
        while self.link is None:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                raise AssertionError("dispatch up printed no login link:\n" +
                                     "".join(self.output)) from None
            if line is None:
                raise AssertionError("dispatch up exited:\n" + "".join(self.output))
            if line.startswith("Web UI: "):
                self.ui_url = line.split(": ", 1)[1].strip()
            match = LINK.search(line)
            if match:
                self.link = match.group(1)

    def _read(self, lines: queue.Queue) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def issue_link(self, org: str, subject: str, kind: str = "serviceaccount") -> str:
        """Another one-time link, written to the server's store from this process (as
        ``dispatch up`` does), for principals the server did not print one for."""
        from engine.identity.login_links import LoginLinks
        from engine.identity.principal import Principal
        from engine.store import open_store

        store = open_store(f"sqlite:///{self.home}/dispatch.db")
        try:
            token = LoginLinks(store).issue(Principal(org, subject, kind))
        finally:
            store.close()
        return f"{self.url}/ui/login?token={token}"

    def admin_token(self) -> str:
        """A bearer token of the admin, signed with the key ``dispatch up`` wrote."""
        from tests.e2e.identity_client import sign

        return sign((self.home / "admin.key").read_bytes(), "default", "admin")

    def api(self, method: str, path: str, **kwargs):
        """A REST API call as the admin (for what the UI has no form for)."""
        import requests

        headers = {"Authorization": f"Bearer {self.admin_token()}"}
        response = requests.request(method, f"{self.url}{path}", headers=headers,
                                    timeout=60, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


_SCREENSHOTS_TAKEN = []


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _SCREENSHOTS_TAKEN.append(ARTIFACTS)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots went, at the end of every run that took some."""
    if _SCREENSHOTS_TAKEN:
        terminalreporter.write_line(f"web UI screenshots: {_SCREENSHOTS_TAKEN[0]}")


@pytest.fixture(scope="module")
def dispatch_up(tmp_path_factory):
    base = tmp_path_factory.mktemp("ui")
    server = DispatchUp(base / "home", base / "config.json")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


class Checked:
    """A page whose every visit can be screenshot and checked with axe-core; it records
    Content-Security-Policy violations and script errors, which tests assert are none."""

    def __init__(self, page, artifacts: Path, prefix: str):
        self.page = page
        self.artifacts = artifacts
        self.prefix = prefix
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text
                                        or "Refused to" in text):
            self.problems.append(text)

    def check(self, name: str, *, full_page: bool = True) -> None:
        """Screenshot the page as ``<prefix>-<name>.png`` and run axe-core on it."""
        self.page.screenshot(path=str(self.artifacts / f"{self.prefix}-{name}.png"),
                             full_page=full_page)
        assert_accessible(self.page, name)
        assert not self.problems, self.problems


_AXE_SOURCE: str | None = None


def assert_accessible(page, name: str) -> None:
    """No serious or critical axe-core violation on the page. axe is evaluated through
    the DevTools protocol (as an extension would be): the page's CSP stays in force."""
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = AXE.read_text()
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_AXE_SOURCE)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: axe-core violations:\n{json.dumps(bad, indent=2)}"


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=WIDE)
    yield ctx
    ctx.close()


@pytest.fixture
def ui(context, dispatch_up, artifacts, request):
    """A page signed in as the admin (a fresh one-time link per test: the printed one
    is spent by the first test that uses it)."""
    page = context.new_page()
    page.set_default_timeout(30_000)
    checked = Checked(page, artifacts, request.node.name.removeprefix("test_"))
    page.goto(dispatch_up.issue_link("default", "admin"))
    return checked
