"""``python3 -m tasks.probe``: whether the store and the broker this process's settings
name answer: exit 0 and ``ready``, or exit 1 naming what does not answer and why.

The worker and scheduler containers run it as their Kubernetes ``exec`` probe: neither
process listens on a port of its own, and a worker cut off from etcd or Redis can take no
job. Each check is bounded by ``--timeout`` seconds (default 5), so a probe never hangs.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Callable

import redis

from engine.settings import Settings
from engine.store import open_store


def check_store(url: str) -> None:
    """The store's current revision can be read."""
    store = open_store(url)
    try:
        store.revision()
    finally:
        store.close()


def check_broker(url: str, timeout: float) -> None:
    """Redis answers PING; an AMQP broker accepts a TCP connection; the stub is in-process."""
    if url.startswith(("redis:", "rediss:", "unix:")):
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    elif url.startswith(("amqp:", "amqps:")):
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        default = 5671 if parts.scheme == "amqps" else 5672
        socket.create_connection((parts.hostname or "localhost", parts.port or default), timeout).close()


def bounded(check: Callable[[], None], timeout: float) -> str | None:
    """Run ``check`` in a thread: None if it passed within ``timeout``, else why not."""
    outcome: list[str | None] = []

    def run():
        try:
            check()
            outcome.append(None)
        except Exception as exc:  # any failure is the answer, reported as it is
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def shown(url: str) -> str:
    """``url`` without the credentials it may hold (``redis://user:password@host``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tasks.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per check (default 5)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"not ready: configuration: {exc}", file=sys.stderr)
        return 1
    problems = []
    for what, url, check in (
        ("store", settings.store_url, lambda: check_store(settings.store_url)),
        ("broker", settings.broker_url, lambda: check_broker(settings.broker_url, args.timeout)),
    ):
        why = bounded(check, args.timeout)
        if why is not None:
            problems.append(f"{what} {shown(url)} unavailable: {why}")
    if problems:
        print("not ready: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
