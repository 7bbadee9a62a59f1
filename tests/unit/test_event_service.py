"""The event and subscription services and their reconciler rows, on the memory store with
a recording job queue: de-duplication, deterministic runs, redelivery, lifecycles."""

from __future__ import annotations

import pytest

from engine import entities as E
from engine.errors import Conflict, InvalidInput, NotFound
from engine.cloudevents import normalize
from engine.jobs import DELIVER_EVENT, EXECUTE_RUN, SYNC_SUBSCRIPTION, RecordingJobs
from engine.services.events import EventService, event_name, run_name
from engine.scheduler.reconciler import Reconciler
from engine.services.runs import RunService
from engine.services.subscriptions import SubscriptionService
from engine.store import open_store

ORG = "acme"


class Parts:
    def __init__(self):
        self.store = open_store("memory://")
        self.jobs = RecordingJobs()
        # start() needs neither a driver nor the function service: runs are not executed
        self.runs = RunService(self.store, self.jobs, driver=None, functions=None)
        self.events = EventService(self.store, self.jobs, self.runs, retention_seconds=60)
        self.subscriptions = SubscriptionService(self.store, self.jobs, FunctionsOf(self.store))

    def function(self, name: str, org: str = ORG, status: str = E.READY) -> E.Entity:
        return self.store.add(E.new(E.FUNCTION, org, name, status=status,
                                    faasId=f"{name}-v1", secrets=["fn-secret"]))

    def subscribe(self, function: str, event_type: str = "user.created", org: str = ORG,
                  **spec) -> E.Entity:
        sub = self.subscriptions.create(org, dict(eventType=event_type, function=function,
                                                  **spec))
        self.drain()
        return self.store.get(E.SUBSCRIPTION, org, sub["name"])

    def drain(self, *only: str) -> None:
        """Carry out queued jobs (except runs, which need a driver), as a worker would."""
        handlers = {DELIVER_EVENT: self.events.deliver, SYNC_SUBSCRIPTION: self.subscriptions.sync}
        pending, self.jobs.submitted = self.jobs.submitted, []
        for job, key in pending:
            if job in handlers and (not only or job in only):
                handlers[job](key)
            else:
                self.jobs.submitted.append((job, key))

    def run_jobs(self) -> list[str]:
        return [key for job, key in self.jobs.submitted if job == EXECUTE_RUN]


class FunctionsOf:
    """The one call the subscription service makes of the function service."""

    def __init__(self, store):
        self.store = store

    def get(self, org, name):
        return self.store.get(E.FUNCTION, org, name)


@pytest.fixture
def parts():
    return Parts()


def event(event_id="e-1", source="tests", type_="user.created", data=None):
    return normalize({"specversion": "1.0", "id": event_id, "source": source,
                      "type": type_, "data": data if data is not None else {"user": "ann"}})


# ---- events ---------------------------------------------------------------------------

def test_emit_stores_the_event_named_by_source_and_id_and_queues_delivery(parts):
    record = parts.events.emit(ORG, event())
    name = event_name("tests", "e-1")
    assert record["name"] == name and len(name) == 40 and record["duplicate"] is False
    assert record["status"] == E.INITIALIZED and record["eventType"] == "user.created"
    assert parts.jobs.submitted == [(DELIVER_EVENT, E.key(E.EVENT, ORG, name))]


def test_a_duplicate_is_returned_marked_and_not_delivered_again(parts):
    parts.function("greet")
    parts.subscribe("greet")
    first = parts.events.emit(ORG, event())
    parts.drain()
    again = parts.events.emit(ORG, event(data={"other": True}))
    assert again["duplicate"] is True and again["id"] == first["id"]
    assert again["event"]["data"] == {"user": "ann"}  # the first one stands
    assert [job for job, _ in parts.jobs.submitted] == [EXECUTE_RUN]


def test_same_id_from_another_source_is_another_event(parts):
    a = parts.events.emit(ORG, event(source="a"))
    b = parts.events.emit(ORG, event(source="b"))
    assert a["name"] != b["name"] and not b["duplicate"]


def test_delivery_starts_one_nonblocking_run_per_matching_subscription(parts):
    parts.function("greet")
    parts.function("audit")
    greet = parts.subscribe("greet", secrets=["sub-secret"])
    audit = parts.subscribe("audit")
    parts.subscribe("greet", event_type="user.deleted")
    record = parts.events.emit(ORG, event())
    parts.drain(DELIVER_EVENT)
    key = E.key(E.EVENT, ORG, record["name"])
    delivered = parts.events.get(ORG, record["name"])
    assert delivered["status"] == E.READY and delivered["reason"] == []
    assert sorted(delivered["runs"]) == sorted([run_name(key, greet["id"]),
                                                run_name(key, audit["id"])])
    run = parts.store.get(E.RUN, ORG, run_name(key, greet["id"]))
    assert run["functionName"] == "greet" and run["blocking"] is False
    assert run["input"] == {"user": "ann"}
    assert run["event"]["eventType"] == "user.created" and run["event"]["type"] == "user.created"
    assert "data" not in run["event"]
    # the function's secrets, then the subscription's: they reach the run
    assert run["secrets"] == ["fn-secret", "sub-secret"]
    assert {"key": "subscription", "value": greet["name"]} in run["tags"]
    assert len(parts.run_jobs()) == 2


def test_redelivery_never_starts_a_second_run(parts):
    parts.function("greet")
    sub = parts.subscribe("greet")
    record = parts.events.emit(ORG, event())
    key = E.key(E.EVENT, ORG, record["name"])
    parts.events.deliver(key)
    # the job delivered again before the event was marked READY (a worker died after
    # starting the runs): the store says READY now, so force the INITIALIZED path
    stored = parts.store.get(E.EVENT, ORG, record["name"])
    parts.store.update(dict(stored, status=E.INITIALIZED, runs=[]))
    parts.events.deliver(key)
    parts.events.deliver(key)
    assert len(parts.store.list(E.RUN, ORG)) == 1
    assert len(parts.run_jobs()) == 1
    assert parts.events.get(ORG, record["name"])["runs"] == [run_name(key, sub["id"])]


def test_a_subscription_whose_function_cannot_run_is_recorded_not_fatal(parts):
    parts.function("greet")
    parts.subscribe("greet")
    gone = parts.subscribe("greet", name="to-gone")
    parts.store.update(dict(gone, function="gone"))  # its function went away after sync
    parts.function("building", status=E.INITIALIZED)
    building = parts.subscribe("building", name="to-building")
    record = parts.events.emit(ORG, event())
    parts.drain(DELIVER_EVENT)
    delivered = parts.events.get(ORG, record["name"])
    assert delivered["status"] == E.READY and len(delivered["runs"]) == 1
    assert "subscription to-gone: Function gone not found" in delivered["reason"]
    assert (f"subscription {building['name']}: function building is not READY"
            in delivered["reason"])


def test_other_organizations_subscriptions_never_fire(parts):
    parts.function("greet", org="other")
    parts.subscribe("greet", org="other")
    record = parts.events.emit(ORG, event())
    parts.drain(DELIVER_EVENT)
    assert parts.events.get(ORG, record["name"])["runs"] == []
    assert parts.store.list(E.RUN, None) == []


def test_subscriptions_not_ready_receive_nothing(parts):
    parts.function("greet")
    sub = parts.subscriptions.create(ORG, {"eventType": "user.created", "function": "greet"})
    parts.events.emit(ORG, event())  # the subscription is still CREATING
    parts.drain(DELIVER_EVENT)
    assert parts.store.list(E.RUN, ORG) == []
    assert parts.store.get(E.SUBSCRIPTION, ORG, sub["name"])["status"] == E.CREATING


def test_list_is_newest_first_and_filters_by_type(parts):
    for i, type_ in enumerate(("a.b", "c.d", "a.b")):
        parts.events.emit(ORG, event(event_id=str(i), type_=type_))
    assert [e["event"]["id"] for e in parts.events.list(ORG)] == ["2", "1", "0"]
    assert [e["event"]["id"] for e in parts.events.list(ORG, event_type="a.b", limit=1)] == ["2"]
    with pytest.raises(InvalidInput, match="limit"):
        parts.events.list(ORG, limit=0)
    with pytest.raises(NotFound):
        parts.events.get(ORG, "0" * 40)


# ---- subscriptions --------------------------------------------------------------------

def test_create_is_creating_then_ready_once_synced(parts):
    parts.function("greet")
    sub = parts.subscriptions.create(ORG, {"name": "s1", "eventType": "a.b", "function": "greet"})
    assert sub["status"] == E.CREATING and sub["kind"] == "Subscription"
    assert parts.jobs.submitted == [(SYNC_SUBSCRIPTION, E.key(E.SUBSCRIPTION, ORG, "s1"))]
    parts.drain()
    assert parts.subscriptions.get(ORG, "s1")["status"] == E.READY


def test_a_name_is_made_up_when_left_out(parts):
    sub = parts.subscriptions.create(ORG, {"eventType": "a.b", "function": "greet"})
    word, animal, digits = sub["name"].split("-")
    assert word.isalpha() and animal.isalpha() and len(digits) == 6 and digits.isdigit()


def test_a_missing_function_is_an_error_that_heals(parts):
    sub = parts.subscribe("later")
    assert sub["status"] == E.ERROR and sub["reason"] == ["function later not found"]
    reconciler = Reconciler(parts.store, parts.jobs, stuck_seconds=0)
    reconciler.reconcile_once()
    assert (SYNC_SUBSCRIPTION, E.key_of(sub)) in parts.jobs.submitted
    parts.function("later")
    parts.drain()
    assert parts.subscriptions.get(ORG, sub["name"])["status"] == E.READY


def test_update_retargets_and_a_second_update_or_delete_meanwhile_is_refused(parts):
    parts.function("greet")
    parts.function("audit")
    sub = parts.subscribe("greet", name="s1")
    updated = parts.subscriptions.update(ORG, "s1", {"eventType": "x.y", "function": "audit",
                                                     "secrets": ["s"]})
    assert updated["status"] == E.UPDATING
    with pytest.raises(InvalidInput, match="s1 is being updated"):
        parts.subscriptions.update(ORG, "s1", {"eventType": "x.y", "function": "greet"})
    with pytest.raises(InvalidInput, match="s1 is being updated"):
        parts.subscriptions.delete(ORG, "s1")
    parts.drain()
    now = parts.subscriptions.get(ORG, "s1")
    assert (now["status"], now["eventType"], now["function"], now["secrets"]) == (
        E.READY, "x.y", "audit", ["s"])
    assert now["id"] == sub["id"]


def test_delete_is_deleting_then_gone(parts):
    parts.function("greet")
    parts.subscribe("greet", name="s1")
    deleting = parts.subscriptions.delete(ORG, "s1")
    assert deleting["status"] == E.DELETING
    with pytest.raises(InvalidInput, match="being deleted"):
        parts.subscriptions.delete(ORG, "s1")
    parts.drain()
    with pytest.raises(NotFound):
        parts.subscriptions.get(ORG, "s1")


@pytest.mark.parametrize("spec, message", [
    ({"function": "f"}, "eventType is required"),
    ({"eventType": "a b", "function": "f"}, "eventType 'a b' may only contain"),
    ({"eventType": "a" * 129, "function": "f"}, "eventType must be at most 128"),
    ({"eventType": "a.b"}, "function is required"),
    ({"eventType": "a.b", "function": "-f"}, "function '-f' should start with"),
    ({"eventType": "a.b", "function": "f", "secrets": "s"}, "secrets must be a list"),
    ({"eventType": "a.b", "function": "f", "secrets": ["ok", "b/d"]}, "secrets\\[1\\] 'b/d'"),
    ({"name": "no way", "eventType": "a.b", "function": "f"}, "name 'no way' should start"),
])
def test_bad_subscriptions_are_refused_naming_the_field(parts, spec, message):
    with pytest.raises(InvalidInput, match=message):
        parts.subscriptions.create(ORG, spec)
    assert parts.store.list(E.SUBSCRIPTION, None) == []


def test_a_taken_name_conflicts(parts):
    parts.subscriptions.create(ORG, {"name": "s1", "eventType": "a.b", "function": "f"})
    with pytest.raises(Conflict):
        parts.subscriptions.create(ORG, {"name": "s1", "eventType": "a.b", "function": "f"})


# ---- the reconciler's rows ------------------------------------------------------------

def test_a_stuck_event_is_delivered_again_and_an_old_one_pruned(parts):
    record = parts.events.emit(ORG, event())
    parts.jobs.submitted.clear()  # the message was lost
    reconciler = Reconciler(parts.store, parts.jobs, stuck_seconds=5, event_retention_seconds=60)
    assert reconciler.reconcile_once(now=record["emittedAt"] + 1) == {}
    moved = reconciler.reconcile_once(now=record["emittedAt"] + 10)
    assert moved == {"resubmitted_deliver_event": 1}
    parts.drain()
    assert parts.events.get(ORG, record["name"])["status"] == E.READY
    assert reconciler.reconcile_once(now=record["emittedAt"] + 30) == {}
    assert reconciler.reconcile_once(now=record["emittedAt"] + 61) == {"pruned_event": 1}
    with pytest.raises(NotFound):
        parts.events.get(ORG, record["name"])
    # past the retention, the same event is a new one
    assert parts.events.emit(ORG, event())["duplicate"] is False
