"""Directive name -> setup function: built-ins lazily, third-party plugins via entry points.

A third-party distribution registers ``[project.entry-points."kdns.plugins"] NAME = "module"``;
the module exports ``setup`` and ``AFTER`` (the directive it runs after in the chain).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from kdns.directives import BUILTIN, ORDER
from kdns.errors import CorefileError
from kdns.plugin import Controller, PluginFactory

ENTRY_POINT_GROUP = "kdns.plugins"

SetupFunc = Callable[[Controller], PluginFactory]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    name: str
    setup: SetupFunc
    repeatable: bool


class Registry:
    def __init__(self) -> None:
        self.order: list[str] = list(ORDER)
        self._third_party: dict[str, str] = {}
        self._cache: dict[str, PluginSpec] = {}
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        try:
            eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception:  # a broken distribution must not stop the server
            return
        for ep in eps:
            if ep.name in BUILTIN or ep.name in self._third_party:
                continue
            try:
                module = ep.load()
            except Exception:
                continue
            after = getattr(module, "AFTER", "whoami")
            pos = self.order.index(after) + 1 if after in self.order else len(self.order)
            self.order.insert(pos, ep.name)
            self._third_party[ep.name] = ep.value

    def known(self, name: str) -> bool:
        return name in self.order

    def available(self) -> list[str]:
        return sorted(BUILTIN | set(self._third_party))

    def rank(self, name: str) -> int:
        return self.order.index(name)

    def spec(self, name: str) -> PluginSpec:
        """The plugin's setup; raises CorefileError-free KeyError only for unknown names."""
        if name in self._cache:
            return self._cache[name]
        module = self._module(name)
        setup = getattr(module, "setup", None)
        if not callable(setup):
            raise CorefileError(f"plugin/{name}: module has no setup function")
        spec = PluginSpec(name, setup, bool(getattr(module, "REPEATABLE", False)))
        self._cache[name] = spec
        return spec

    def _module(self, name: str) -> ModuleType:
        if name in BUILTIN:
            return importlib.import_module(f"kdns.plugins.{name}")
        return importlib.import_module(self._third_party[name].split(":")[0])

    def implemented(self, name: str) -> bool:
        return name in BUILTIN or name in self._third_party
