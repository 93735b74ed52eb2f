"""Import optional dependencies on first use, with a message naming the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """An optional package is needed by the component being built but is not installed."""


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module` or fail with an instruction that names the setup.cfg extra providing it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(
            f"the optional package '{module}' is not installed{why}: "
            f"install it with `pip install 'toolkit[{extra}]'` (or `make install`, which installs every extra)"
        ) from err
