"""The config reference, written from the config's schema so the two cannot drift.

``tuneladder config --reference > config/README.md`` writes it; a test fails when
the committed file differs from what the schema says now.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tuneladder.ladder.config import load_schema

__all__ = ["config_reference"]

HEADER = """\
# Config reference

Every key of an experiment config, from
[`src/tuneladder/schemas/config.schema.yaml`](../src/tuneladder/schemas/config.schema.yaml),
which validates each config before anything runs. This page is written from it by
`tuneladder config --reference > config/README.md` (a test fails when they
differ); `tuneladder config --config my.yaml` prints a config with every default
filled in. Keys are dotted: `coarse.halving.eta` is `eta` under `halving` under
`coarse`.
"""


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """A node with its ``$ref`` (``#/$defs/...``) merged in; its own keys win."""
    node = dict(node)
    while "$ref" in node:
        target: Any = root
        for part in node.pop("$ref").removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **node}
    return node


def _type(node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(_type(_resolve(n, root), root) for n in node[key])
    kind = node.get("type")
    if kind is None:
        return "object" if "properties" in node else "any"
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(str(k) for k in kinds)
    bounds = [
        f"{sign} {node[key]}"
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
        if key in node
    ]
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(
    prefix: str, node: Mapping[str, Any], root: Mapping[str, Any]
) -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) of a node and of every key below it."""
    node = _resolve(node, root)
    default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
    yield prefix, _type(node, root), default, _cell(node.get("description", ""))
    for name, child in (node.get("properties") or {}).items():
        yield from _rows(f"{prefix}.{name}", child, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping) and ("$ref" in extra or "properties" in extra):
        yield from _rows(f"{prefix}.<name>", extra, root)


def config_reference(schema: Mapping[str, Any] | None = None) -> str:
    """The reference page (Markdown): one section per top-level key, a table below it."""
    root = load_schema() if schema is None else schema
    required = set(root.get("required", ()))
    lines = [HEADER, _cell(root.get("description", "")), ""]
    for name, node in root["properties"].items():
        rows = list(_rows(name, node, root))
        _, kind, default, description = rows[0]
        must = " (required)" if name in required else ""
        lines += [f"## `{name}`{must}", ""]
        lines += [description, ""] if description else []
        lines.append(f"Type: {kind}" + (f"; default {default}" if default else "") + ".")
        lines.append("")
        if len(rows) > 1:
            lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
            lines += [f"| `{key}` | {k} | {d} | {text} |" for key, k, d, text in rows[1:]]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
