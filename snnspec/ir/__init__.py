"""The IR: frozen pydantic models, the contract between the front end and the back ends.

Two layers live here. The *spec IR* (`Spec` and what it holds, `spec.py`) is the checked model
exactly as the user wrote it: expressions keep their units as written, names are resolved and
validated; each network that checks clean carries the values its checks evaluated (`NetworkFacts`,
`facts.py`). The *lowered IR* (`LoweredSpec`, `lowered.py`) is what a backend prints: discrete
update equations, derived surrogate gradients, the network's execution plan and every shape; a
neuron's fused recurrence (`LKernel`) is in `kernel.py`, a network's program (`LProgram`) in
`program.py`. Both round-trip through JSON. The pieces every model is made of are in `base.py`
(and the model and the source span themselves in `span.py`).

Every name is importable from here, as `ir.X` or `from snnspec.ir import X`; a module is imported
(and its models built, most of the cost of importing pydantic models) on the first use of one of
its names, so that what needs only the diagnostics' `Span` (a cached `snnspec check`) builds no
more than `span.py`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what a type checker sees; at run time `__getattr__` below imports on first use
    from .base import *  # noqa: F403
    from .facts import *  # noqa: F403
    from .kernel import *  # noqa: F403
    from .lowered import *  # noqa: F403
    from .program import *  # noqa: F403
    from .span import *  # noqa: F403
    from .spec import *  # noqa: F403

_MODULES = ("span", "base", "facts", "spec", "kernel", "program", "lowered")  # each imports only ones before it


if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt `ir.X` stays an error there

    def __getattr__(name: str) -> object:
        """`ir.X`: X from the first module in `_MODULES` that has it (importing the modules before it)."""
        if name in _MODULES:
            return importlib.import_module(f"{__name__}.{name}")
        if not name.startswith("_"):
            for sub in _MODULES:
                namespace = vars(importlib.import_module(f"{__name__}.{sub}"))
                if name in namespace:
                    globals()[name] = namespace[name]
                    return namespace[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
