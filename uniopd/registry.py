"""Named extension points: objectives, verifiers, data sources, online balancers, calibrators.

A registry maps a name, as written in an experiment file, to the object that implements it. The
project's own entries register themselves where they are defined; a package outside uniopd adds
entries through Python entry points, with no fork and no edit here:

    # the plugin's pyproject.toml
    [project.entry-points."uniopd.objectives"]
    my_kl = "my_package.objective:MyKL"        # registered as `my_kl`
    [project.entry-points."uniopd.verifiers"]
    dates = "my_package.dates"                 # a module: importing it registers what it defines

Plugins load the first time a registry is read, so an unknown name can list every known one. A
plugin that fails to import is an error that names it (the experiment file is refused, exit 2):
a silently missing objective would train something else than the file says.
"""

from __future__ import annotations

import importlib
import inspect
import types
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown name, a name registered twice, or a plugin that failed to load."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    help: str
    origin: str  # "uniopd", or the distribution of the plugin that registered it


class Registry(Generic[T]):
    def __init__(
        self,
        kind: str,
        group: str,
        builtins: str | tuple[str, ...] = (),
        companions: tuple[str, ...] = (),
    ):
        """`kind` names entries in messages ("objective"); `group` is the entry-point group;
        `builtins` are modules of this package whose import registers the built-in entries;
        `companions` are other groups whose plugin modules may register here too (a domain module
        named in `uniopd.verifiers` also registers its data source)."""
        self.kind, self.group, self.companions = kind, group, companions
        self._builtins = (builtins,) if isinstance(builtins, str) else builtins
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._origin = "uniopd"  # who registers: a plugin's distribution while its module loads

    def register(
        self, name: str, obj: T | None = None, *, help: str | None = None, origin: str | None = None
    ) -> Any:
        """`registry.register("jsd", JSD)` or `@registry.register("jsd")` on a class/function."""
        origin = origin or self._origin

        def add(target: T) -> T:
            if name in self._entries and self._entries[name].obj is not target:
                raise RegistryError(
                    f"{self.kind} {name!r} is registered twice "
                    f"({self._entries[name].origin} and {origin})"
                )
            text = help or inspect.getdoc(target) or ""
            self._entries[name] = Entry(name, target, text.strip().split("\n\n")[0], origin)
            return target

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name].obj

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: a plugin module may read this registry while importing
        for module in self._builtins:
            importlib.import_module(module)
        for group in (self.group, *self.companions):
            for ep in entry_points(group=group):
                dist = ep.dist.name if ep.dist is not None else "?"
                self._origin = dist
                try:
                    target = ep.load()
                except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is reported
                    self._loaded = False
                    raise RegistryError(
                        f"plugin {ep.name!r} ({ep.value}, from {dist}, entry-point group {group}) "
                        f"failed to load: {type(exc).__name__}: {exc}"
                    ) from exc
                finally:
                    self._origin = "uniopd"
                # a module registers its own entries; an object is registered under the entry
                # point's name, in its own group's registry only
                if group == self.group and not isinstance(target, types.ModuleType):
                    self.register(ep.name, target, origin=dist)


def check_name(registry: Registry, name: str) -> str:
    """For schema validators: the name if registered, else a PydanticCustomError naming the known."""
    from pydantic_core import PydanticCustomError

    try:
        registry.get(name)
    except RegistryError as exc:
        raise PydanticCustomError("registry", "{reason}", {"reason": str(exc)}) from exc
    return name
