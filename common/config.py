"""YAML config files validated against a typed pydantic schema.

Every command (trainer, agent) has one schema; this module loads a YAML file into it,
applies `--set key=value` overrides and turns every failure into a single
`ConfigError` line that names the key and, where it came from the file, its line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import UserError

T = TypeVar("T", bound=BaseModel)

# Far above any real config; an alias bomb (anchors referencing anchors) expands past it
# from a few hundred bytes, and is refused before anything is expanded.
MAX_YAML_NODES = 100_000


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message is one line meant for the user."""


class Schema(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.problem})") from None
    return key.strip().split("."), value


def _apply(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at `loc`, or of its nearest existing parent."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = next(k for k, v in node.value if v is match).start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _expanded_nodes(root: yaml.Node | None) -> int:
    """How many nodes `root` holds once its aliases are expanded, counted without expanding them."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # an alias cycle counts once instead of recursing forever
            if isinstance(node, yaml.MappingNode):
                sizes[key] = 1 + sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                sizes[key] = 1 + sum(size(v) for v in node.value)
        return sizes[key]

    return size(root) if root is not None else 0


def load_config(schema: type[T], path: str | Path | None, overrides: list[str] = ()) -> T:
    """Load `path` (or only defaults when None), apply overrides, validate against `schema`."""
    tree: dict = {}
    root = None
    where = "defaults"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text()
        try:
            root = yaml.compose(text)
            if _expanded_nodes(root) > MAX_YAML_NODES:
                raise ConfigError(f"{path}: more than {MAX_YAML_NODES} YAML nodes once its aliases are "
                                  "expanded (an alias bomb?); refused")
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{at}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
    overridden = []
    for text in overrides:
        key_path, value = parse_override(text)
        _apply(tree, key_path, value)
        overridden.append(key_path)
    try:
        return schema.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        # A value that came from --set has no line in the file: name the override instead.
        from_set = any([str(p) for p in err["loc"][: len(o)]] == o for o in overridden)
        line = None if from_set else _line_of(root, err["loc"])
        where = "--set" if from_set else where
        at = f" line {line}" if line else ""
        got = f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and "input" in err and not isinstance(err["input"], dict) else ""
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}{at}: {key}: {msg}{got}{more}") from None


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
