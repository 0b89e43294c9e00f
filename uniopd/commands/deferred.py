"""torch deferred until something uses it, for the commands that only describe: `uniopd list`
and `uniopd fields` read the registries' names, help and options, and no tensor is made.

The objectives and strategies import torch at their top (they are tensor code, METHOD 2-4), so
listing them would load it: a second or more, most of what these commands took. Here `torch`
and the submodules imported by name (`import torch.nn.functional as F`) are stand-in modules
until the first attribute is read from one of them; then the real torch is imported and each
stand-in takes over its real module's attributes when it is next read. Code that does use torch
while registering (a plugin's objective that builds a tensor at import) still gets it, later.
`from torch import nn` reads an attribute, so it loads torch at once: correct, only not deferred.

    with deferred("torch"):
        print(listing())
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


class _StandIn(types.ModuleType):
    __cached__: str | None  # a module attribute typeshed leaves out

    def __getattr__(self, name: str):  # only for attributes the stand-in does not have yet
        if name == "__path__":  # packages were given theirs: this is a plain module, as the real
            raise AttributeError(name)
        _withdraw(self.__name__.partition(".")[0])
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)  # later reads go straight to the real objects
        return getattr(real, name)


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Gives a stand-in for every submodule of `root` that exists, found where the real one is."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, name, path, target=None):
        if not name.startswith(self.root + "."):
            return None
        real = importlib.machinery.PathFinder.find_spec(name, path)
        if real is None:
            return None
        spec = importlib.machinery.ModuleSpec(name, self, origin=real.origin)
        spec.submodule_search_locations = real.submodule_search_locations  # its own submodules
        return spec

    def create_module(self, spec):
        module = _StandIn(spec.name)
        # what the import system reads while it sets the module up: present, so nothing loads
        module.__file__, module.__cached__ = spec.origin, None
        if spec.submodule_search_locations is not None:
            module.__path__ = spec.submodule_search_locations
        return module

    def exec_module(self, module) -> None:  # nothing runs until an attribute is read
        pass


def _withdraw(root: str) -> None:
    """Take the finder and every stand-in under `root` out, so the next import is the real one."""
    sys.meta_path[:] = [
        f for f in sys.meta_path if not (isinstance(f, _StandInFinder) and f.root == root)
    ]
    for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
        if isinstance(sys.modules[name], _StandIn):
            del sys.modules[name]


@contextmanager
def deferred(root: str) -> Iterator[None]:
    """`root` and its submodules are imported only if read while inside; nothing changes if it is
    already imported or not installed."""
    spec = importlib.util.find_spec(root) if root not in sys.modules else None
    if spec is None:
        yield
        return
    stand_in = importlib.util.module_from_spec(spec)  # a real spec: `import torch` loads nothing
    stand_in.__class__ = _StandIn
    sys.modules[root] = stand_in
    sys.meta_path.insert(0, _StandInFinder(root))
    try:
        yield
    finally:
        _withdraw(root)  # never used: later imports are the real ones
