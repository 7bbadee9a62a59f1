"""The embedded system (``dispatch up``): API, in-process workers and the reconciler in
one process, on the SQLite store, Dramatiq's StubBroker and the local driver."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import secrets
import signal
import sys
import threading

import dramatiq
from cryptography.hazmat.primitives import serialization

from engine.errors import NotFound
from engine.identity.bootstrap import (
    ADMIN, DEFAULT_ORG, bootstrap, public_key_of, write_private_key,
)
from engine.identity.login_links import TTL_SECONDS as LOGIN_LINK_TTL, LoginLinks
from engine.identity.principal import SERVICE_ACCOUNT, Principal
from engine.observability.logs import configure_logging
from engine.scheduler.runner import SchedulerThreads
from engine.settings import Settings
from tasks.actors import assemble
from tasks.broker import make_broker

from .app import create_app
from .http_server import HttpServer

log = logging.getLogger("dispatch.embedded")


class EmbeddedServer:
    """A running embedded Dispatch. ``url`` is where its API answers; ``stop()`` ends it
    (idempotent, and safe from several threads at once).

    With auth on (the default), :meth:`start` bootstraps organization ``default`` and its
    admin service account ``admin`` (allowed everything everywhere), whose private key
    is ``admin_key_path`` (``$DISPATCH_HOME/admin.key``, 0600): written when the account
    is made, and made again (the old key void) when the file is gone or does not match
    the account (copied from another installation). With auth off,
    ``admin_key_path`` is None.
    """

    admin_org = DEFAULT_ORG
    admin_account = ADMIN

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8080,
                 http_threads: int = 16):
        os.makedirs(settings.home, exist_ok=True)
        if not settings.session_secret:
            settings = dataclasses.replace(settings,
                                           session_secret=session_secret(settings.home))
        self.settings = settings
        self.admin_key_path = (os.path.join(settings.home, "admin.key")
                               if settings.auth == "on" else None)
        self.broker = make_broker("stub://")
        self.system = assemble(settings, self.broker)
        self.worker = dramatiq.Worker(self.broker, worker_threads=settings.worker_threads,
                                      worker_timeout=100)
        self.app = create_app(self.system)
        self.http = HttpServer(self.app, host, port, threads=http_threads,
                               linger_seconds=settings.http_linger_ms / 1000)
        self.host, self.port = host, self.http.port
        self.url = f"http://{host}:{self.port}"
        self.scheduler = SchedulerThreads(self.system, follow=False)
        self._stop_lock = threading.Lock()
        self._stopped = False

    def start(self) -> "EmbeddedServer":
        if self.admin_key_path is not None:
            self._bootstrap()
        self.worker.start()
        # custom event drivers post to this server unless DISPATCH_API_URL says otherwise
        if not self.settings.api_url:
            self.system.event_drivers.api_url = self.url
        self.scheduler.start()
        self.http.start()
        log.info("embedded.listening url=%s home=%s store=%s", self.url, self.settings.home,
                 self.settings.store_url)
        return self

    def _bootstrap(self) -> None:
        done = bootstrap(self.system.store, self.admin_org, self.admin_account,
                         new_key=not self._admin_key_matches())
        if done.private_key is not None:
            write_private_key(self.admin_key_path, done.private_key)
            log.info("embedded.admin_key_written account=%s/%s path=%s", done.org,
                     done.account, self.admin_key_path)

    def _admin_key_matches(self) -> bool:
        """Whether ``admin_key_path`` holds the private half of the stored admin's key
        (False when the file is gone, unreadable, or from another installation)."""
        try:
            with open(self.admin_key_path, "rb") as file:
                key = serialization.load_pem_private_key(file.read(), password=None)
            account = self.system.identity.service_accounts.get(self.admin_org,
                                                                self.admin_account)
        except (OSError, ValueError, TypeError, NotFound):
            return False
        return account["publicKey"] == public_key_of(key)

    def login_link(self) -> str | None:
        """A one-time link signing a browser in to the web UI as the admin; None with
        auth off (no login needed) or when the server listens beyond the loopback
        interface (sign in with the OIDC login there)."""
        if self.admin_key_path is None or not is_loopback(self.host):
            return None
        token = LoginLinks(self.system.store, LOGIN_LINK_TTL).issue(
            Principal(self.admin_org, self.admin_account, SERVICE_ACCOUNT))
        return f"{self.url}/ui/login?token={token}"

    def stop(self) -> None:
        """Stop serving, then the workers, the scheduler threads and the store; a second
        call (or one from another thread meanwhile) waits for the first and returns."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self.scheduler.stop()
            self.http.stop()
            self.worker.stop()
            self.system.close()
            self.scheduler.join(timeout=5)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def session_secret(home: str) -> str:
    """The secret signing browser sessions: ``<home>/session.key``, made (0600) on first
    use so that sessions outlive a restart."""
    path = os.path.join(home, "session.key")
    try:
        with open(path) as file:
            secret = file.read().strip()
        if secret:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    write_private_key(path, secret.encode("ascii"))
    return secret


def start_embedded(home: str, host: str = "127.0.0.1", port: int = 8080,
                   **overrides) -> EmbeddedServer:
    """Start an embedded Dispatch in background threads and return it."""
    settings = Settings.from_env(home=home, broker_url="stub://", **overrides)
    return EmbeddedServer(settings, host, port).start()


def serve_embedded(home: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run an embedded Dispatch until SIGINT or SIGTERM (the ``dispatch up`` command)."""
    configure_logging()
    # A run crosses several threads of this one process (HTTP, queue, worker, watch);
    # each hand-off may wait for the GIL up to the switch interval (5 ms by default).
    sys.setswitchinterval(0.0005)
    server = start_embedded(home, host, port)
    print(f"Dispatch is up at {server.url} (home {server.settings.home}); Ctrl-C stops it",
          flush=True)
    if server.admin_key_path is not None:
        print(f"Admin: service account {server.admin_org}/{server.admin_account}, private "
              f"key {server.admin_key_path}", flush=True)
    print(f"Web UI: {server.url}/ui/", flush=True)
    link = server.login_link()
    if link is not None:
        print(f"Web UI login (once, within {int(LOGIN_LINK_TTL // 60)} minutes, as the "
              f"admin): {link}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    print("Stopping Dispatch…", flush=True)
    server.stop()
