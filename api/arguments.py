"""Request arguments loaded the short way when they are plain, as marshmallow would.

webargs hands every request's query and JSON body to ``Schema.load`` through a proxy of
the query's multidict and marshmallow's per-field machinery (a getter, ``deserialize``,
validators, an error store, hooks): for a run's ``POST /v1/runs`` that is some 0.1 ms of
the API's CPU, in a request whose whole cost is about one millisecond. Nearly every
request sends only plain values: a string where the schema has a ``String``, a boolean
where it has a ``Boolean``, any JSON where it has ``Raw``. :class:`LoadPlan` loads those
directly, with each field's place in the output prepared once per schema. Anything else
— a field of another type, a validator or hook anywhere, a value marshmallow would
convert, refuse or fill in (``null`` where it is not allowed, a missing required field,
a default), an unknown key the schema refuses — gets ``None``, and the caller loads it
through webargs and marshmallow as before, which says what is wrong in its own words.
``tests/unit/test_arguments.py`` compares both ways over every schema of the API.

The answers take the same short way (:class:`blueprints.common.DumpSchema`): a value
whose type a field writes unchanged (:func:`dumped_unchanged`: a string for a
``String``, anything for ``Raw``…) is written as it is, without the field's
``_serialize``.
"""

from __future__ import annotations

from typing import Any, Mapping

from marshmallow import EXCLUDE, Schema, fields, missing

#: how a field's values are taken
_STRING, _BOOLEAN, _RAW, _DICT, _STRINGS = range(5)
#: what :func:`dumped_unchanged` answers for a field that dumps every value as it is
EVERY_TYPE = None
_NONE = type(None)


def _kind(field: fields.Field) -> int | None:
    """How :class:`LoadPlan` takes ``field``'s values, or None: marshmallow must."""
    if field.validators or field.pre_load or field.post_load:
        return None
    cls = type(field)
    if cls is fields.String:
        return _STRING
    if cls is fields.Boolean:
        # the class's own true and false values: True is one, False the other
        return (_BOOLEAN if field.truthy == fields.Boolean.truthy
                and field.falsy == fields.Boolean.falsy else None)
    if cls is fields.Raw:
        return _RAW
    if cls is fields.Dict:
        return _DICT if field.key_field is None and field.value_field is None else None
    if cls is fields.List:
        inner = field.inner
        return _STRINGS if _kind(inner) == _STRING and not inner.allow_none else None
    return None


class LoadPlan:
    """How to load a plain mapping for one schema (:meth:`of`: None if the schema is not
    plain: hooks, ``many``, a ``load`` of its own)."""

    def __init__(self, schema: Schema):
        #: data key -> (key in the output, how the value is taken, None allowed)
        self.fields: dict[str, tuple[str, int, bool]] = {}
        #: data keys that marshmallow would load and this plan cannot
        self.others: set[str] = set()
        #: data keys whose absence marshmallow refuses (required) or fills in (a default)
        self.needed: list[str] = []
        for name, field in schema.load_fields.items():
            data_key = name if field.data_key is None else field.data_key
            attribute = name if field.attribute is None else field.attribute
            kind = _kind(field)
            if field.required or field.load_default is not missing:
                self.needed.append(data_key)
            if kind is None or "." in attribute:
                self.others.add(data_key)
            else:
                self.fields[data_key] = (attribute, kind, field.allow_none)
        self.unknown = schema.unknown

    @classmethod
    def of(cls, schema: Schema) -> "LoadPlan | None":
        """``schema``'s plan, made on first use and kept on the schema."""
        plan = schema.__dict__.get("_dispatch_load_plan", False)
        if plan is False:
            plain = (type(schema).load is Schema.load
                     and type(schema)._do_load is Schema._do_load
                     and type(schema)._deserialize is Schema._deserialize
                     and not schema.many and not schema.partial
                     and schema.dict_class is dict
                     and not any(schema._hooks.values()))
            plan = cls(schema) if plain else None
            schema.__dict__["_dispatch_load_plan"] = plan
        return plan

    def load(self, data: Mapping[str, Any], unknown: str | None) -> dict | None:
        """What ``Schema.load(data, unknown=unknown)`` answers, or None when only
        marshmallow can tell (a value it converts or refuses, a key it refuses or keeps).
        ``data`` may be a multidict (a query): its ``get`` gives a key's first value."""
        unknown = unknown or self.unknown
        for key in self.needed:
            if key not in data:
                return None
        for key in data:
            if key not in self.fields and (key in self.others or unknown != EXCLUDE):
                return None
        out: dict[str, Any] = {}
        for key, (attribute, kind, allow_none) in self.fields.items():  # marshmallow's order
            value = data.get(key, missing)
            if value is missing:
                continue
            if value is None:
                if not allow_none:
                    return None
            elif kind == _STRING:
                if type(value) is not str:
                    return None
            elif kind == _BOOLEAN:
                if type(value) is not bool:
                    return None
            elif kind == _DICT:
                if type(value) is not dict:
                    return None
                value = dict(value)
            elif kind == _STRINGS:
                if type(value) is not list or any(type(item) is not str for item in value):
                    return None
                value = list(value)
            out[attribute] = value
        return out


def dumped_unchanged(field: fields.Field) -> frozenset | None:
    """The types of value ``field`` dumps unchanged (its ``_serialize`` gives the value
    itself back), for :class:`blueprints.common.DumpSchema`; :data:`EVERY_TYPE` (``Raw``)."""
    cls = type(field)
    if cls is fields.Raw:
        return EVERY_TYPE
    if cls is fields.String:
        return frozenset((str, _NONE))
    if cls is fields.Boolean:
        plain = field.truthy == fields.Boolean.truthy and field.falsy == fields.Boolean.falsy
        return frozenset((bool, _NONE)) if plain else frozenset()
    if cls in (fields.Integer, fields.Float) and not field.as_string:
        return frozenset((int if cls is fields.Integer else float, _NONE))
    return frozenset()


def load_mapping(schema: Schema, data: Mapping[str, Any], unknown: str | None) -> dict | None:
    """``schema.load(data, unknown=unknown)`` the short way, or None (see the module)."""
    plan = LoadPlan.of(schema)
    return None if plan is None else plan.load(data, unknown)


__all__ = ["EVERY_TYPE", "LoadPlan", "dumped_unchanged", "load_mapping"]
