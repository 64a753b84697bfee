"""What every configuration object shares: range checks and JSON (de)serialisation.

A configuration class is a frozen dataclass that mixes in :class:`JsonConfig`
and names its file format in ``FORMAT_NAME`` / ``FORMAT_VERSION``; fields
listed in ``LIST_FIELDS`` are tuples in Python and lists in JSON.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError


def need_int(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an integer in ``[lo, hi]``, or a :class:`ConfigError` naming the field and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field '{name}': expected an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"field '{name}': {value} is out of range [{lo}, {hi}]")
    return value


class JsonConfig:
    FORMAT_NAME: ClassVar[str]
    FORMAT_VERSION: ClassVar[int] = 1
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in self.LIST_FIELDS:
            d[key] = list(getattr(self, key))
        return d

    @classmethod
    def from_dict(cls, d: dict, *, source: str | None = None):
        where = f"{source}: " if source else ""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}configuration must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}unknown field(s) {unknown}; known fields are {sorted(names)}")
        for key in cls.LIST_FIELDS:
            if key in d and not isinstance(d[key], (list, tuple)):
                raise ConfigError(f"{where}field '{key}': expected a list, got {d[key]!r}")
        try:
            return cls(**d)
        except (ConfigError, TypeError) as e:   # TypeError: e.g. unhashable values inside lists
            raise ConfigError(f"{where}{e}") from None

    def to_json(self) -> str:
        return json.dumps({"format": self.FORMAT_NAME, "version": self.FORMAT_VERSION, **self.to_dict()}, indent=2)

    @classmethod
    def from_json(cls, text: str, *, source: str | None = None):
        where = f"{source}: " if source else ""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                              "truncated file?") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{where}configuration must be a JSON object")
        fmt = d.pop("format", cls.FORMAT_NAME)
        ver = d.pop("version", cls.FORMAT_VERSION)
        if fmt != cls.FORMAT_NAME:
            raise ConfigError(f"{where}field 'format': expected {cls.FORMAT_NAME!r}, got {fmt!r}")
        if ver != cls.FORMAT_VERSION:
            raise ConfigError(f"{where}field 'version': unsupported version {ver!r} "
                              f"(this spikecore reads version {cls.FORMAT_VERSION})")
        return cls.from_dict(d, source=source)

    def save(self, path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"{p}: cannot read configuration ({e.strerror})") from None
        return cls.from_json(text, source=str(p))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
