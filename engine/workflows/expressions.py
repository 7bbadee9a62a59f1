"""Runtime expressions: jq (the PyPI ``jq`` package) behind the DSL's ``${ … }``.

- A string value is an expression when it is ``${ … }`` (strict mode, the spec's
  default); fields the spec types as runtime expressions (``if``, ``when``, ``while``,
  ``for.in``, ``until``, string ``input.from``/``output.as``/``export.as``…) are
  expressions with or without the ``${ }``.
- The arguments (``$context``, ``$input``, ``$output``, ``$task``, ``$workflow``,
  ``$runtime``, ``$secret``/``$secrets``, ``$authorization``, and scope variables such as
  ``for.each``'s or ``catch.as``'s) are bound as jq variables. Only the variables an
  expression names are serialized for it, so ``$workflow.definition`` costs nothing
  unless used; a variable that is not in scope is ``null``.
- Each distinct expression text is compiled once per process (an LRU cache).
- An expression yielding one value gives that value; none gives ``null``; several give
  the list of them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Mapping

import jq

_WRAPPED = re.compile(r"^\s*\$\{(.*)\}\s*$", re.S)
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_BUILTIN_VARIABLES = {"__loc__", "ENV", "__prog_args", "__v", "__d"}


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate; the message is jq's. ``where`` is
    the JSON path of the failing string inside an evaluated template (or ``""``)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a ``${ … }`` runtime expression string."""
    return isinstance(value, str) and _WRAPPED.match(value) is not None


def unwrap(text: str) -> str:
    """The jq program of an expression, with or without its ``${ }``."""
    m = _WRAPPED.match(text)
    return (m.group(1) if m else text).strip()


class SecretUnavailable(ExpressionError):
    """An expression reads a secret the execution was not given."""


#: ``$secret.NAME`` / ``$secrets["NAME"]`` in an expression
SECRET_REFERENCE = re.compile(
    r"\$secrets?(?:\??\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*\"([^\"]+)\"\s*\])")


class Compiled:
    """One compiled expression, the variables it reads and the secrets it names."""

    __slots__ = ("program", "variables", "secrets")

    def __init__(self, text: str):
        names = sorted(set(_VARIABLE.findall(text)) - _BUILTIN_VARIABLES)
        self.variables = tuple(names)
        self.secrets = tuple(sorted({a or b for a, b in SECRET_REFERENCE.findall(text)}))
        if names:
            binding = "{" + ", ".join("$" + n for n in names) + "}"
            source = f".[1] as {binding} | .[0] | ({text})"
        else:
            source = text
        try:
            self.program = jq.compile(source)
        except ValueError as e:
            raise ExpressionError(_jq_message(e)) from None

    def evaluate(self, data: Any, variables: Mapping[str, Any] | Callable[[str], Any]) -> Any:
        """Run on ``data`` with ``variables`` (a mapping, or a function of a name)."""
        if self.variables:
            get = variables if callable(variables) else variables.get
            bound = {n: get(n) for n in self.variables}
            if self.secrets:
                given = bound.get("secret") or bound.get("secrets") or {}
                missing = [n for n in self.secrets if n not in given]
                if missing:
                    raise SecretUnavailable(f"secret {missing[0]!r} is not available")
            value = [data, bound]
        else:
            value = data
        try:
            results = self.program.input_value(value).all()
        except ValueError as e:
            raise ExpressionError(_jq_message(e)) from None
        if not results:
            return None
        return results[0] if len(results) == 1 else results


def _jq_message(error: Exception) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    lines = [ln for ln in lines if ln != "^" and not re.match(r"^jq: \d+ compile errors?$", ln)]
    return " ".join(lines).replace("jq: error: ", "") or "invalid jq expression"


@lru_cache(maxsize=8192)
def compile_expression(text: str) -> Compiled:
    """The compiled form of ``text`` (with or without ``${ }``), cached per process."""
    return Compiled(unwrap(text))


def evaluate(text: str, data: Any, variables) -> Any:
    """Evaluate the expression ``text`` on ``data``."""
    return compile_expression(text).evaluate(data, variables)


def evaluate_template(value: Any, data: Any, variables) -> Any:
    """``value`` with every ``${ … }`` string inside it (at any depth) evaluated."""
    if isinstance(value, str):
        return evaluate(value, data, variables) if is_expression(value) else value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                out[k] = evaluate_template(v, data, variables)
            except ExpressionError as e:
                e.where = f"/{_escape(str(k))}{e.where}"
                raise
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            try:
                out.append(evaluate_template(v, data, variables))
            except ExpressionError as e:
                e.where = f"/{i}{e.where}"
                raise
        return out
    return value


def evaluate_field(value: Any, data: Any, variables) -> Any:
    """A field typed "runtime expression or object": a string is an expression even
    without ``${ }``; an object is a template."""
    if isinstance(value, str):
        return evaluate(value, data, variables)
    return evaluate_template(value, data, variables)


def expressions_in(value: Any, path: str):
    """Yield ``(json_path, text)`` for every ``${ … }`` string inside ``value``."""
    if isinstance(value, str):
        if is_expression(value):
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from expressions_in(v, f"{path}/{_escape(str(k))}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from expressions_in(v, f"{path}/{i}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


_TEMPLATE_VARIABLE = re.compile(r"\{([^{}]+)\}")


def expand_uri_template(template: str, data: Any) -> str:
    """RFC 6570 simple string expansion as the DSL limits it: ``{name}`` is the
    top-level property ``name`` of ``data`` (empty when absent); a value that is not a
    string, number, boolean or null raises :class:`ExpressionError`."""
    from urllib.parse import quote

    def substitute(m: re.Match) -> str:
        name = m.group(1)
        value = data.get(name) if isinstance(data, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return quote(str(value), safe="")
        raise ExpressionError(f"URI template variable {{{name}}} is a {type(value).__name__}, "
                              "not a string, number, boolean or null")

    return _TEMPLATE_VARIABLE.sub(substitute, template)
