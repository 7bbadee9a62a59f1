"""CloudEvents parsing: Dispatch's 0.1 JSON and CloudEvents 1.0 (structured, batch and
binary HTTP modes) come out as one normalized shape; every bad input is refused with a
message naming the field."""

from __future__ import annotations

import base64
import json

import pytest
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from engine.errors import InvalidInput
from engine.cloudevents import context_event, normalize, parse_http

JSON = {"Content-Type": "application/json"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}

V01 = {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "crm",
       "eventID": "ev-1", "eventTime": "2018-04-05T17:31:00Z", "contentType":
       "application/json", "schemaURL": "https://example.com/user.json",
       "eventTypeVersion": "2", "extensions": {"tenant": "t1"}, "data": {"name": "ann"}}

V10 = {"specversion": "1.0", "type": "user.created", "source": "crm", "id": "ev-1",
       "time": "2018-04-05T17:31:00+02:00", "datacontenttype": "application/json",
       "subject": "ann", "tenant": "t1", "data": {"name": "ann"}}


def body(value) -> bytes:
    return json.dumps(value).encode()


def refused(headers, value, message):
    raw = value if isinstance(value, bytes) else body(value)
    with pytest.raises(InvalidInput) as info:
        parse_http(headers, raw)
    assert message in info.value.message, info.value.message
    return info.value.message


# ---- accepted shapes ------------------------------------------------------------------

def test_dispatch_01_shape_is_normalized_to_10_attributes():
    [event] = parse_http(JSON, body(V01))
    assert event == {"specversion": "1.0", "type": "user.created", "id": "ev-1",
                     "source": "crm", "time": "2018-04-05T17:31:00Z",
                     "datacontenttype": "application/json",
                     "dataschema": "https://example.com/user.json",
                     "eventtypeversion": "2", "tenant": "t1", "data": {"name": "ann"}}


def test_01_minimal_with_no_content_type_header():
    minimal = {k: V01[k] for k in ("eventType", "cloudEventsVersion", "source", "eventID")}
    [event] = parse_http({}, body(minimal))
    assert event == {"specversion": "1.0", "type": "user.created", "id": "ev-1",
                     "source": "crm", "data": None}


def test_10_structured_mode_as_the_sdk_writes_it():
    sdk_event = CloudEvent({"type": "user.created", "source": "crm", "id": "ev-1",
                            "datacontenttype": "application/json"}, {"name": "ann"})
    message = to_structured(sdk_event, JSONFormat())
    [event] = parse_http(message.headers, message.body)
    assert (event["type"], event["id"], event["data"]) == ("user.created", "ev-1",
                                                           {"name": "ann"})
    assert event["time"].startswith(sdk_event.get_time().strftime("%Y-%m-%dT%H:%M"))


def test_10_structured_object_sent_as_plain_json():
    [event] = parse_http(JSON, body(V10))
    assert event == V10


def test_10_structured_data_base64_is_kept_as_base64():
    raw = base64.b64encode(b"\x00\xffbinary").decode()
    value = {k: V10[k] for k in ("specversion", "type", "source", "id")}
    [event] = parse_http(STRUCTURED, body(dict(value, data_base64=raw)))
    assert event["data"] == raw and event["datacontenttype"] == "application/octet-stream"


def test_10_text_data_stays_text():
    value = dict(V10, datacontenttype="text/plain", data="hello")
    [event] = parse_http(STRUCTURED, body(value))
    assert event["data"] == "hello"


def test_10_batch_mode():
    second = dict(V10, id="ev-2", data=[1, 2])
    events = parse_http(BATCH, body([V10, second]))
    assert [e["id"] for e in events] == ["ev-1", "ev-2"] and events[1]["data"] == [1, 2]


def test_10_binary_mode_as_the_sdk_writes_it():
    sdk_event = CloudEvent({"type": "user.created", "source": "/crm/x", "id": "ev-1",
                            "datacontenttype": "application/json", "subject": "a b%c",
                            "tenant": "t1"}, {"name": "ann"})
    message = to_binary(sdk_event, JSONFormat())
    [event] = parse_http(message.headers, message.body)
    assert event["source"] == "/crm/x" and event["subject"] == "a b%c"  # percent-decoded
    assert event["tenant"] == "t1" and event["data"] == {"name": "ann"}
    assert event["datacontenttype"] == "application/json"


def test_10_binary_mode_text_and_bytes():
    headers = {"ce-specversion": "1.0", "ce-type": "file.uploaded", "ce-source": "s",
               "ce-id": "1"}
    [text] = parse_http(dict(headers, **{"Content-Type": "text/csv"}), b"a,b\n1,2\n")
    assert text["data"] == "a,b\n1,2\n"
    [raw] = parse_http(dict(headers, **{"Content-Type": "image/png"}), b"\x89PNG\x00")
    assert base64.b64decode(raw["data"]) == b"\x89PNG\x00"
    assert raw["datacontenttype"] == "image/png"
    [empty] = parse_http(headers, b"")
    assert empty["data"] is None


def test_normalize_takes_one_object_of_either_version():
    assert normalize(V01)["type"] == normalize(V10)["type"] == "user.created"


def test_context_event_has_both_names_and_no_data():
    shown = context_event(parse_http(JSON, body(V01))[0])
    assert "data" not in shown
    assert shown["eventType"] == shown["type"] == "user.created"
    assert shown["eventID"] == shown["id"] == "ev-1"
    assert shown["cloudEventsVersion"] == "0.1" and shown["specversion"] == "1.0"
    assert shown["eventTime"] == "2018-04-05T17:31:00Z"
    assert shown["contentType"] == "application/json"
    assert shown["schemaURL"] == "https://example.com/user.json"
    assert shown["eventTypeVersion"] == "2"
    assert shown["extensions"] == {"tenant": "t1"}
    assert shown["source"] == "crm"


# ---- refused input --------------------------------------------------------------------

@pytest.mark.parametrize("field", ["eventType", "source", "eventID", "cloudEventsVersion"])
def test_01_required_fields(field):
    value = {k: v for k, v in V01.items() if k != field}
    if field == "cloudEventsVersion":
        refused(JSON, value, "cloudEventsVersion is required")
    else:
        refused(JSON, value, f"{field} is required")


@pytest.mark.parametrize("change, message", [
    ({"cloudEventsVersion": "0.2"}, "cloudEventsVersion must be 0.1"),
    ({"eventType": "a" * 129}, "eventType must be at most 128 characters"),
    ({"eventType": "user/created"}, "eventType 'user/created' may only contain"),
    ({"eventType": 5}, "eventType must be a string"),
    ({"eventTime": "yesterday"}, "eventTime is not an RFC 3339 timestamp"),
    ({"eventTime": "2018-04-05"}, "eventTime is not an RFC 3339 timestamp"),
    ({"eventTime": "2018-04-05T17:31:00"}, "eventTime is not an RFC 3339 timestamp"),
    ({"extensions": ["x"]}, "extensions must be an object"),
    ({"extensions": {"Bad-Name": 1}}, "extensions.Bad-Name"),
    ({"extensions": {"id": "x"}}, "extensions.id is reserved"),
    ({"eventTypeVersion": 2}, "eventTypeVersion must be a string"),
    ({"colour": "red"}, "colour is not a CloudEvents 0.1 field"),
    ({"contentType": "text/plain", "data": {"a": 1}}, "data must be a string"),
])
def test_bad_01_events(change, message):
    refused(JSON, dict(V01, **change), message)


@pytest.mark.parametrize("change, message", [
    ({"specversion": "0.3"}, "specversion must be 1.0"),
    ({"type": None}, "type is required"),
    ({"id": ""}, "id is required"),
    ({"source": None}, "source is required"),
    ({"id": 5}, "id: Attribute 'id' must be a string"),
    ({"time": "2018-13-45T00:00:00Z"}, "time is not an RFC 3339 timestamp"),
    ({"subject": ""}, "subject"),
    ({"Tenant": "x"}, "Tenant: Extension attribute 'Tenant' should only contain"),
    ({"data_base64": "not base64!"}, "data and data_base64 cannot both be given"),
])
def test_bad_10_events(change, message):
    value = {k: v for k, v in dict(V10, **change).items() if v is not None}
    refused(STRUCTURED, value, message)


def test_bad_data_base64():
    value = {k: v for k, v in V10.items() if k != "data"}
    refused(STRUCTURED, dict(value, data_base64="&&&"), "data_base64 is not base64")


@pytest.mark.parametrize("raw, message", [
    (b"", "invalid JSON body: the body is empty"),
    (b"{not json", "invalid JSON body: Expecting property name"),
    (b"\xff\xfe", "invalid JSON body"),
    (b"[1, 2]", "the event must be a JSON object"),
    (b'{"hello": "world"}', "specversion is required"),
])
def test_bad_bodies(raw, message):
    refused(JSON, raw, message)


def test_bad_batches():
    refused(BATCH, {"a": 1}, "a CloudEvents batch must be a JSON array")
    refused(BATCH, [], "at least one event")
    refused(BATCH, [V10, dict(V10, id="")], "event 1 of the batch: id is required")


def test_bad_binary_mode():
    headers = {"ce-specversion": "1.0", "ce-type": "a.b", "ce-source": "s", "ce-id": "1"}
    refused({k: v for k, v in headers.items() if k != "ce-id"}, b"", "ce-id is required")
    refused(dict(headers, **{"ce-specversion": "0.3"}), b"", "ce-specversion must be 1.0")
    refused(dict(headers, **{"ce-time": "soon"}), b"", "ce-time is not an RFC 3339")
    refused(dict(headers, **{"Content-Type": "application/json"}), b"{oops",
            "invalid JSON body")
    refused(dict(headers, **{"Content-Type": "text/plain"}), b"\xff", "not UTF-8 text")
