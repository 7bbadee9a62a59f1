"""EventDriverService on a memory store with recorded jobs and a recording emit: the
driver lifecycle, tokens (encrypted at rest, checked per driver), ingest wrapping, and
the reconciler's rows for drivers."""

from __future__ import annotations

import json
import sys

import pytest

from api.errors import status_of
from cryptography.fernet import Fernet, MultiFernet

from engine import entities as E
from engine.errors import Conflict, InvalidInput
from engine.jobs import SYNC_EVENT_DRIVER, RecordingJobs
from engine.errors import Unauthenticated
from engine.services.event_drivers import EventDriverService
from engine.services.ingest import IngestService
from engine.scheduler.reconciler import Reconciler
from engine.store import open_store


class Emitted(list):
    def __call__(self, org, event):
        self.append((org, event))
        return {"name": "n", "event": event, "duplicate": False}


@pytest.fixture
def parts():
    store = open_store("memory://")
    jobs, emitted = RecordingJobs(), Emitted()
    service = EventDriverService(store, jobs, MultiFernet([Fernet(Fernet.generate_key())]),
                                 "http://api.example:8080/",
                                 allowed_commands=("/usr/bin/env", sys.executable))
    yield service, store, jobs, emitted
    store.close()


@pytest.fixture
def ingest(parts):
    service, store, _, emitted = parts
    return IngestService(store, service, emitted, max_body_bytes=100)


def test_a_driver_is_created_then_made_ready_by_its_job(parts):
    service, store, jobs, _ = parts
    driver = service.create("o", {"name": "hook", "type": "webhook"})
    assert driver["status"] == E.CREATING
    assert jobs.submitted == [(SYNC_EVENT_DRIVER, "/dispatch/driver/o/hook")]
    service.sync("/dispatch/driver/o/hook")
    assert service.get("o", "hook")["status"] == E.READY
    service.sync("/dispatch/driver/o/hook")  # idempotent
    assert service.get("o", "hook")["status"] == E.READY


def test_a_cron_driver_gets_its_cursor_when_ready_and_loses_it_when_deleted(parts):
    service, store, _, _ = parts
    service.create("o", {"name": "c", "type": "cron",
                         "config": [{"key": "schedule", "value": "*/5 * * * *"}]})
    service.sync("/dispatch/driver/o/c")
    assert store.get(E.SCHEDULE, "o", "c")["schedule"] == "*/5 * * * *"
    assert service.delete("o", "c")["status"] == E.DELETING
    service.sync("/dispatch/driver/o/c")
    assert store.list(E.DRIVER, "o") == [] and store.list(E.SCHEDULE, "o") == []


def test_the_token_is_encrypted_at_rest_and_shown_with_the_ingest_url(parts):
    service, store, _, _ = parts
    driver = service.create("o", {"name": "hook", "type": "webhook"})
    assert driver["url"] == "http://api.example:8080/v1/event/ingest/hook"
    raw = json.dumps(store.get(E.DRIVER, "o", "hook"))
    assert driver["token"] not in raw and "encryptedToken" not in driver


def test_a_token_authenticates_only_its_own_driver(parts, ingest):
    service, _, _, _ = parts
    a = service.create("o1", {"name": "hook", "type": "webhook"})
    b = service.create("o2", {"name": "hook", "type": "webhook"})
    assert ingest.authenticate(a["token"], "hook")["organizationId"] == "o1"
    assert ingest.authenticate(b["token"], "hook")["organizationId"] == "o2"
    assert ingest.authenticate(b["token"])["organizationId"] == "o2"
    for token, name in ((a["token"], "other"), ("", "hook"), (None, None), ("x", None)):
        with pytest.raises(Unauthenticated, match="token not recognized"):
            ingest.authenticate(token, name)


def test_a_plain_body_is_wrapped_in_an_event_of_the_drivers_org(parts, ingest):
    service, store, _, emitted = parts
    service.create("o", {"name": "hook", "type": "webhook",
                         "config": [{"key": "eventType", "value": "order.paid"}]})
    service.sync("/dispatch/driver/o/hook")
    driver = store.get(E.DRIVER, "o", "hook")
    ingest.ingest(driver, {"Content-Type": "application/json", "X-Request-Id": "r-1"},
                   b'{"total": 3}')
    [(org, event)] = emitted
    assert org == "o" and event["type"] == "order.paid" and event["id"] == "r-1"
    assert event["source"] == "/v1/event/ingest/hook" and event["data"] == {"total": 3}
    with pytest.raises(InvalidInput, match="invalid JSON body"):
        ingest.ingest(driver, {"Content-Type": "application/json"}, b"{nope")
    assert len(emitted) == 1


def test_ingest_refuses_a_driver_not_ready_and_a_body_over_the_limit(parts, ingest):
    service, store, _, emitted = parts
    service.create("o", {"name": "hook", "type": "webhook"})
    with pytest.raises(Conflict, match="not READY"):
        ingest.ingest(store.get(E.DRIVER, "o", "hook"), {}, b"{}")
    service.sync("/dispatch/driver/o/hook")
    with pytest.raises(Exception, match="over the limit of 100") as caught:
        ingest.ingest(store.get(E.DRIVER, "o", "hook"), {}, b"x" * 101)
    assert status_of(caught.value) == 413 and not emitted


def test_an_update_cannot_change_the_type_and_is_synced(parts):
    service, _, jobs, _ = parts
    service.create("o", {"name": "hook", "type": "webhook"})
    with pytest.raises(InvalidInput, match="type cannot change"):
        service.update("o", "hook", {"type": "cron"})
    driver = service.update("o", "hook", {"config": [{"key": "eventType", "value": "a.b"}]})
    assert driver["status"] == E.UPDATING and jobs.submitted[-1][0] == SYNC_EVENT_DRIVER


def test_the_reconciler_resubmits_a_stuck_driver(parts):
    service, store, jobs, _ = parts
    service.create("o", {"name": "hook", "type": "webhook"})
    jobs.submitted.clear()
    reconciler = Reconciler(store, jobs, stuck_seconds=2)
    moved = reconciler.reconcile_once(now=store.get(E.DRIVER, "o", "hook")["modifiedTime"] + 3)
    assert moved.get(f"resubmitted_{SYNC_EVENT_DRIVER}") == 1
    assert jobs.submitted == [(SYNC_EVENT_DRIVER, "/dispatch/driver/o/hook")]


def test_command_types_run_only_the_executables_an_operator_allowed(parts):
    service, store, jobs, emitted = parts
    with pytest.raises(InvalidInput, match="'/bin/sh' is not an allowed driver executable"):
        service.create_type("o", {"name": "sh", "command": ["/bin/sh", "-c", "id"]})
    closed = EventDriverService(store, jobs, MultiFernet([Fernet(Fernet.generate_key())]),
                                "http://api.example:8080/")
    with pytest.raises(InvalidInput, match="turned off here.*DISPATCH_DRIVER_COMMANDS"):
        closed.create_type("o", {"name": "py", "command": [sys.executable, "-V"]})
    assert store.list(E.DRIVER_TYPE, "o") == []
    assert service.create_type("o", {"name": "py", "command": [sys.executable, "-V"]})
    # an image type needs no operator permission
    assert closed.create_type("o", {"name": "img", "image": "example.org/driver:1"})
