"""Strict reading of YAML configuration files: unknown keys and bad values are errors that
name the key path and say what was expected (`ConfigError`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigError", "Section", "load_yaml"]

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key."""


def load_yaml(path: Path) -> Section:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return Section(document, "", base=path.parent)


class Section:
    """One mapping of the file. Read every key with the typed getters, then call `done()`:
    any key not read is reported as unknown."""

    def __init__(self, mapping: Mapping[str, Any], path: str, *, base: Path) -> None:
        self._mapping = mapping
        self._path = path
        self._seen: set[str] = set()
        self.base = base

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        return self._mapping.get(key, default)

    def has(self, key: str) -> bool:
        return key in self._mapping

    def section(self, key: str) -> Section:
        value = self._get(key, {})
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self._name(key)}: expected a mapping")
        return Section(value, self._name(key), base=self.base)

    def section_list(self, key: str) -> list[Section]:
        """A list of mappings (e.g. one per EVSE); empty if the key is absent or null."""
        value = self._get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self._name(key)}: expected a list")
        out = []
        for index, item in enumerate(value):
            name = f"{self._name(key)}[{index}]"
            if not isinstance(item, Mapping):
                raise ConfigError(f"{name}: expected a mapping")
            out.append(Section(item, name, base=self.base))
        return out

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key, default)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self._name(key)}: expected text, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)}: expected true or false, got {value!r}")
        return value

    def integer(
        self, key: str, default: int | None, *, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._name(key)}: expected a whole number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"{self._name(key)}: {value} is outside {low}..{high}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self._name(key)}: expected a number, got {value!r}")
        return float(value)

    def path(self, key: str, default: str | None = None) -> Path | None:
        """A file or directory, relative to the configuration file's directory."""
        text = self.string(key, default)
        if text is None:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def choice(self, key: str, enum: type[E], default: E) -> E:
        value = self._get(key, default.value)
        return _member(enum, value, self._name(key))

    def choices(self, key: str, convert: Callable[[str], T], default: list[T]) -> list[T]:
        value = self._get(key, None)
        if value is None:
            return list(default)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{self._name(key)}: expected a non-empty list")
        out = []
        for item in value:
            try:
                out.append(convert(str(item)))
            except ValueError as exc:
                raise ConfigError(f"{self._name(key)}: {exc}") from None
        return out

    def mapping(self, key: str) -> dict[str, Any]:
        """A free-form mapping (e.g. options passed to a plug-in class)."""
        value = self._get(key, {})
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self._name(key)}: expected a mapping")
        return dict(value)

    def done(self) -> None:
        unknown = sorted(set(self._mapping) - self._seen)
        if unknown:
            where = f" in {self._path}" if self._path else ""
            keys = ", ".join(map(str, unknown))
            raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''}{where}: {keys}")


def _member(enum: type[E], value: Any, name: str) -> E:
    for member in enum:
        named = isinstance(value, str) and value.lower() == member.name.lower()
        if value == member.value or named:
            return member
    allowed = ", ".join(str(m.value) for m in enum)
    raise ConfigError(f"{name}: {value!r} is not one of {allowed}")
