"""The results JSON's schema (``results.schema.json``, shipped in the package) and a checker for the
keywords it uses: the plugin checks what it writes against it, and ``merge`` refuses what it
refuses (no jsonschema dependency).

Keywords: type, const, enum, required, properties, additionalProperties, propertyNames, items,
minItems, contains, allOf, anyOf, if/then, $ref, pattern, minimum. A problem names its path
(``$.tests[3].outcome``); a key is shown at most 80 characters long.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results.schema.json")
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


@functools.lru_cache(maxsize=1)
def results_schema() -> dict:
    with open(PATH) as f:
        return json.load(f)


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def _key(key) -> str:
    text = str(key)
    return text if len(text) <= 80 else text[:77] + "..."


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def iter_problems(value, schema: dict, root: dict | None = None, path: str = "$") -> Iterator[str]:
    """Each way ``value`` breaks ``schema``, as ``path: what``, in document order."""
    root = root or schema
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        yield from iter_problems(value, node, root, path)
        return
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            yield f"{path}: expected {'/'.join(kinds)}, got {type(value).__name__}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{path}: expected {schema['const']!r}, got {_shown(value)}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {_shown(value)} is not one of {', '.join(map(str, schema['enum']))}"
    if "anyOf" in schema and not any(_fits(value, s, root, path) for s in schema["anyOf"]):
        yield f"{path}: {schema.get('description', 'matches none of the allowed shapes')}"
    for part in schema.get("allOf", []):
        yield from iter_problems(value, part, root, path)
    if "if" in schema and _fits(value, schema["if"], root, path):
        yield from iter_problems(value, schema.get("then", {}), root, path)
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        yield f"{path}: {_shown(value)} does not match {schema['pattern']}"
    if _is(value, "number") and "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: {value} < {schema['minimum']}"
    if isinstance(value, dict):
        yield from _object(value, schema, root, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield f"{path}: expected at least {schema['minItems']} item(s), got {len(value)}"
        if "contains" in schema and not any(_fits(item, schema["contains"], root, path) for item in value):
            yield f"{path}: {schema['contains'].get('description', 'no item of the required shape')}"
        if "items" in schema:
            for i, item in enumerate(value):
                yield from iter_problems(item, schema["items"], root, f"{path}[{i}]")


def _object(value: dict, schema: dict, root: dict, path: str) -> Iterator[str]:
    for key in schema.get("required", []):
        if key not in value:
            yield f"{path}: missing key {key!r}"
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        where = f"{path}.{_key(key)}"
        if "propertyNames" in schema:
            yield from iter_problems(key, schema["propertyNames"], root, f"{where} (key)")
        if key in props:
            yield from iter_problems(item, props[key], root, where)
        elif extra is False:
            yield f"{path}: unknown key {_key(key)!r}"
        elif isinstance(extra, dict):
            yield from iter_problems(item, extra, root, where)


def _fits(value, schema: dict, root: dict, path: str) -> bool:
    return next(iter_problems(value, schema, root, path), None) is None


def problems(value, schema: dict | None = None) -> list[str]:
    """Every problem of ``value`` against ``schema`` (default: the results JSON's schema)."""
    schema = results_schema() if schema is None else schema
    return list(iter_problems(value, schema))


def first_problem(value, schema: dict | None = None) -> str | None:
    """The first problem of ``value`` against ``schema`` (default: the results schema), or None."""
    schema = results_schema() if schema is None else schema
    return next(iter_problems(value, schema), None)
