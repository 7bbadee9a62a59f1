"""engine.fastjson: orjson's speed, the standard library's answers at orjson's edges."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math

import pytest

from engine import fastjson

EXACT = [
    2**64, -(2**63) - 1, 10**30, -(10**25),  # beyond 64 bits: orjson would refuse or round
    2**63 - 1, -(2**63), 2**64 - 1, 1733400000123456789,  # inside: 19 or 20 digits
    0.1, 1e300, -0.0, 5e-324, 123456789.12345678,
    "é ü 日本 🙂", "\u2028\u2029", "", "x" * 10_000,
    {"nested": [{"a": [1, [2, [3]]]}], "order": {"z": 1, "a": 2}}, [], {}, None, True, False,
]


@pytest.mark.parametrize("value", EXACT, ids=lambda v: repr(v)[:30])
def test_values_come_back_exactly(value):
    text = fastjson.dumps(value)
    assert json.loads(text) == value  # what the standard library reads, too
    back = fastjson.loads(text)
    assert back == value and type(back) is type(value)
    assert fastjson.loads(text.encode()) == value
    if isinstance(value, dict):
        assert list(back) == list(value)  # key order kept


@pytest.mark.parametrize("text", ['{"n": 123456789012345678901234567890}', "[-9999999999999999999]",
                                  '{"id": "1234567890123456789012", "n": 18446744073709551616}'])
def test_long_integers_are_not_read_as_floats(text):
    assert fastjson.loads(text) == json.loads(text)
    assert all(isinstance(v, int) for v in _numbers(fastjson.loads(text)))


def _numbers(value):
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_what_orjson_refuses_to_write_is_written_by_json():
    assert json.loads(fastjson.dumps({1: "a", 2.5: "b"})) == {"1": "a", "2.5": "b"}
    lone = "\ud800"
    assert json.loads(fastjson.dumps({"s": lone})) == {"s": lone}
    deep: list = []
    for _ in range(300):  # past orjson's 254 levels
        deep = [deep]
    assert json.loads(fastjson.dumps(deep)) == deep


def test_nan_and_infinities_are_read_as_json_reads_them_and_written_as_null():
    assert math.isnan(fastjson.loads("NaN"))
    assert fastjson.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    assert fastjson.dumps([math.nan, math.inf]) == "[null,null]"


def test_bad_json_is_reported_in_json_s_words():
    for text in ("{bad", "", "[1,", '{"a" 1}'):
        with pytest.raises(json.JSONDecodeError) as ours:
            fastjson.loads(text)
        with pytest.raises(json.JSONDecodeError) as theirs:
            json.loads(text)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(UnicodeDecodeError):
        fastjson.loads(b'"\xff"')


def test_nesting_too_deep_is_a_recursion_error_as_before():
    with pytest.raises(RecursionError):
        fastjson.loads("[" * 100_000 + "]" * 100_000)


def test_types_json_has_none_for_go_to_default_or_raise_type_error():
    @dataclasses.dataclass
    class Point:
        x: int

    when = datetime.datetime(2026, 12, 6, 9, 30, tzinfo=datetime.timezone.utc)
    for value in (when, Point(1), {1, 2}, b"bytes"):
        with pytest.raises(TypeError):
            fastjson.dumps(value)
    assert fastjson.dumps({"t": when, "p": Point(1)}, default=str) == \
        json.dumps({"t": when, "p": Point(1)}, default=str, separators=(",", ":"))
