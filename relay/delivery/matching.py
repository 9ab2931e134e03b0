"""Which endpoints an event goes to. Pure.

An event matches an endpoint when the tenants are equal, one of the endpoint's `events`
patterns matches the type, its `channels` admit the event's, and its `filter` matches the
envelope.

Channels (Svix's): an endpoint without channels takes every event; one with channels
takes only events sharing at least one of them, so an event without channels reaches
none of those.

Patterns: the exact name, `prefix.*` (any type below prefix) or `*` (any type except
relay's own operational events, `relay.*`: those reach only patterns that name them, so
an existing `*` subscriber gets no surprise traffic).

Filters (docs/configuration.md has the user's version): a filter table maps dotted paths
into the envelope (`data.qualification.score`) to a condition, and every entry must hold.
A condition is a value (equal to it), a list of values (equal to one of them), or an
operator table whose operators must all hold:

    $eq $neq        a string, number or boolean
    $in $nin        a non-empty list of them
    $gt $gte $lt $lte   a number, or a string (compared by code point: ISO 8601 times)
    $exists         true (the path is present, even as null) or false (it is absent)
    $prefix         a string the value starts with

Beside the paths, a table may hold `$and`, `$or` and `$not`, each a non-empty list of
filter tables: `$and` holds when all of them match, `$or` when at least one does, `$not`
when none does (`$not = [A]` negates A; `$not = [A, B]` is "neither A nor B").

Values compare as JSON does: a string never equals a number, `true` is not 1, 1 equals
1.0. A value of another kind than the operand matches nothing, whatever the operator
(`$neq "a"` does not match 5, `$gte 0.8` does not match "0.9"); so does a missing path,
except under `$exists = false`. Matching never raises.

`compile_filter` checks a filter once, at config or API load, and turns it into a
function of the envelope: one closure per path that looks it up and tests the value, the
paths split and list operands put in sets by kind ahead of time, so matching an event is
a few dict look-ups and comparisons per path (no generators, no dispatch on operator
names: each cost a measurable share of a filter's ~1.5 us).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Envelope = Mapping[str, Any]
Filter = Callable[[Envelope], bool]
Loc = tuple[str | int, ...]
_Test = Callable[[Any], bool]  # on the value found at a path (_MISSING when absent)

_MISSING: Any = object()
OPERATORS = ("$eq", "$neq", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$prefix")
COMBINATORS = ("$and", "$or", "$not")
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_NUMBER = (int, float)  # bool is not among them: type(True) is bool


def type_matches(patterns: Sequence[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == event_type:
            return True
        if pattern == "*":
            if not event_type.startswith("relay."):
                return True
        elif pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def channels_match(wanted: frozenset[str] | None, channels: Sequence[str] | None) -> bool:
    """Whether an endpoint listening to `wanted` (None: every event) takes an event sent
    on `channels`."""
    return wanted is None or not wanted.isdisjoint(channels or ())


class FilterError(ValueError):
    """An invalid filter: every problem, each with its location inside the filter."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))


def compile_filter(spec: Mapping[str, Any]) -> Filter:
    """The filter as a function of the envelope; FilterError names every problem."""
    problems: list[tuple[Loc, str]] = []
    compiled = _table(spec, (), problems)
    if problems:
        raise FilterError(problems)
    return compiled


def _always(envelope: Envelope) -> bool:
    return True


def _table(spec: Mapping[str, Any], loc: Loc, problems: list[tuple[Loc, str]]) -> Filter:
    checks: list[Filter] = []
    for key, condition in spec.items():
        here = (*loc, key)
        if key in COMBINATORS:
            group = _combination(key, condition, here, problems)
            if group is not None:
                checks.append(group)
        elif key in OPERATORS:
            problems.append((here, f"{key} applies to a path: "
                             f'{{ "data.x" = {{ "{key}" = ... }} }}'))
        elif key.startswith("$"):
            problems.append((here, "unknown operator; beside the paths a filter table takes "
                             + ", ".join(COMBINATORS)))
        elif "" in (parts := tuple(key.split("."))):
            problems.append((here, "not a dotted path into the envelope (an empty part)"))
        else:
            test = _condition(condition, here, problems)
            if test is not None:
                checks.append(_at(parts, test))
    return _all(checks)


def _all(checks: list[Filter]) -> Filter:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    members = tuple(checks)

    def match(envelope: Envelope) -> bool:
        for check in members:  # noqa: SIM110 (all() of a generator: 0.3 us more a call)
            if not check(envelope):
                return False
        return True

    return match


def _at(parts: tuple[str, ...], test: _Test) -> Filter:
    """Look the path up and test the value: one call per path (most are one or two deep)."""
    if len(parts) == 1:
        [key] = parts
        return lambda envelope: test(envelope.get(key, _MISSING))
    if len(parts) == 2:
        first, second = parts

        def check(envelope: Envelope) -> bool:
            value = envelope.get(first, _MISSING)
            return test(value.get(second, _MISSING) if type(value) is dict else _MISSING)

        return check

    def check_deep(envelope: Envelope) -> bool:
        value: Any = envelope
        for part in parts:
            value = value.get(part, _MISSING) if type(value) is dict else _MISSING
        return test(value)

    return check_deep


def _combination(key: str, tables: Any, loc: Loc,
                 problems: list[tuple[Loc, str]]) -> Filter | None:
    if not isinstance(tables, list) or not tables:
        problems.append((loc, f"must be a non-empty list of filter tables, not {_what(tables)}"))
        return None
    compiled: list[Filter] = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            problems.append(((*loc, i), f"must be a filter table, not {_what(table)}"))
        elif not table:
            problems.append(((*loc, i), "an empty filter table (it would match every event)"))
        else:
            compiled.append(_table(table, (*loc, i), problems))
    if key == "$and":
        return _all(compiled)
    members = tuple(compiled)

    def any_of(envelope: Envelope) -> bool:
        for member in members:  # noqa: SIM110 (as in _all)
            if member(envelope):
                return True
        return False

    if key == "$or":
        return any_of
    return lambda envelope: not any_of(envelope)


def _condition(condition: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> _Test | None:
    """A path's condition: a value, a list of accepted values, or an operator table."""
    if isinstance(condition, list):
        return _one_of(condition, loc, problems, negate=False, empty_ok=True)
    if not isinstance(condition, dict):
        return _equal(condition, loc, problems, negate=False)
    if not condition:
        problems.append((loc, "an empty operator table; give at least one of "
                         + ", ".join(OPERATORS)))
        return None
    tests: list[_Test] = []
    for op, operand in condition.items():
        here = (*loc, op)
        test: _Test | None = None
        if op in ("$eq", "$neq"):
            test = _equal(operand, here, problems, negate=op == "$neq")
        elif op in ("$in", "$nin"):
            test = _one_of(operand, here, problems, negate=op == "$nin", empty_ok=False)
        elif op in _ORDER:
            test = _ordered(_ORDER[op], operand, here, problems)
        elif op == "$exists":
            test = _exists(operand, here, problems)
        elif op == "$prefix":
            test = _prefix(operand, here, problems)
        elif op in COMBINATORS:
            problems.append((here, f"{op} combines filter tables: put it beside the paths, "
                             f'e.g. {{ "{op}" = [{{ "data.a" = 1 }}, {{ "data.b" = 2 }}] }}'))
        elif op.startswith("$"):
            problems.append((here, "unknown operator; operators: " + ", ".join(OPERATORS)))
        else:
            problems.append((here, "not an operator (operators start with $); to reach a "
                             'nested field write its dotted path, e.g. "data.a.b"'))
        if test is not None:
            tests.append(test)
    if len(tests) != len(condition):
        return None
    if len(tests) == 1:
        return tests[0]
    members = tuple(tests)

    def every(value: Any) -> bool:
        for test in members:  # noqa: SIM110 (as in _all)
            if not test(value):
                return False
        return True

    return every


def _scalar(value: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((loc, "must be a finite number"))
        return False
    if isinstance(value, str | int | float):  # bool is an int
        return True
    problems.append((loc, f"must be a string, number or boolean, not {_what(value)}"))
    return False


def _equal(operand: Any, loc: Loc, problems: list[tuple[Loc, str]], *,
           negate: bool) -> _Test | None:
    if not _scalar(operand, loc, problems):
        return None
    if isinstance(operand, bool):
        if negate:
            return lambda v: type(v) is bool and v is not operand
        return lambda v: v is operand
    if isinstance(operand, str):
        if negate:
            return lambda v: type(v) is str and v != operand
        return lambda v: type(v) is str and v == operand
    if negate:
        return lambda v: type(v) in _NUMBER and v != operand
    return lambda v: type(v) in _NUMBER and v == operand


def _one_of(operand: Any, loc: Loc, problems: list[tuple[Loc, str]], *, negate: bool,
            empty_ok: bool) -> _Test | None:
    """Values grouped by JSON kind, one set each: a value looks only in its own kind's set
    (so 1 does not find True), and a kind absent from the list matches nothing."""
    if not isinstance(operand, list) or not (operand or empty_ok):
        problems.append((loc, "must be a non-empty list of strings, numbers or booleans, "
                         f"not {_what(operand)}"))
        return None
    strings, numbers, booleans = set(), set(), set()
    ok = True
    for i, value in enumerate(operand):
        if not _scalar(value, (*loc, i), problems):
            ok = False
        elif isinstance(value, bool):
            booleans.add(value)
        elif isinstance(value, str):
            strings.add(value)
        else:
            numbers.add(value)
    if not ok:
        return None
    by_type: dict[type, frozenset[Any]] = {}
    for kinds, values in (((str,), strings), (_NUMBER, numbers), ((bool,), booleans)):
        if values:
            by_type.update(dict.fromkeys(kinds, frozenset(values)))
    if negate:
        def test(v: Any) -> bool:
            accepted = by_type.get(type(v))
            return accepted is not None and v not in accepted
    else:
        def test(v: Any) -> bool:
            accepted = by_type.get(type(v))
            return accepted is not None and v in accepted
    return test


def _ordered(compare: Callable[[Any, Any], bool], operand: Any, loc: Loc,
             problems: list[tuple[Loc, str]]) -> _Test | None:
    if isinstance(operand, bool) or not isinstance(operand, str | int | float):
        problems.append((loc, f"must be a number or a string, not {_what(operand)}"))
        return None
    if isinstance(operand, float) and not math.isfinite(operand):
        problems.append((loc, "must be a finite number"))
        return None
    if isinstance(operand, str):
        return lambda v: type(v) is str and compare(v, operand)
    return lambda v: type(v) in _NUMBER and compare(v, operand)


def _exists(operand: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> _Test | None:
    if not isinstance(operand, bool):
        problems.append((loc, f"must be true or false, not {_what(operand)}"))
        return None
    if operand:
        return lambda v: v is not _MISSING
    return lambda v: v is _MISSING


def _prefix(operand: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> _Test | None:
    if not isinstance(operand, str):
        problems.append((loc, f"must be a string, not {_what(operand)}"))
        return None
    return lambda v: type(v) is str and v.startswith(operand)


def _what(value: Any) -> str:
    """A value's kind in the user's words (TOML or JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a TOML {type(value).__name__} (quote it to compare it as a string)"
