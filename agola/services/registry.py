"""The one place mapping component names to role classes, imported lazily.

To plug a role in, create ``agola/services/<name>/role.py`` with a ``<Name>Role(Role)`` class whose
``name`` is the component name; the entry below already points there (remove the name from
``NOT_IMPLEMENTED`` if it is listed). Nothing else to register.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agola.config import ALL_COMPONENTS
from agola.errors import AgolaError, BadRequest

if TYPE_CHECKING:
    from agola.services.role import Role

# component name -> "module:ClassName", in the start order of spec §1.1.
ROLES: dict[str, str] = {
    "runservice": "agola.services.runservice.role:RunserviceRole",
    "executor": "agola.services.executor.role:ExecutorRole",
    "configstore": "agola.services.configstore.role:ConfigstoreRole",
    "scheduler": "agola.services.scheduler.role:SchedulerRole",
    "notification": "agola.services.notification.role:NotificationRole",
    "gateway": "agola.services.gateway.role:GatewayRole",
    "gitserver": "agola.services.gitserver.role:GitserverRole",
}

assert tuple(ROLES) == ALL_COMPONENTS, "registry and config must agree on the components"

# Components deliberately not built yet: `all`/`all-base` skip them with a warning, naming one
# explicitly is an error. Every other role must import; one that does not is a broken install.
NOT_IMPLEMENTED: frozenset[str] = frozenset()


class NotImplementedComponent(BadRequest):
    """The component is known but deliberately not built yet (listed in ``NOT_IMPLEMENTED``)."""


class BrokenInstallation(AgolaError):
    """A role that should exist cannot be imported: files are missing from the installed package,
    or a dependency is. Never reported as "not implemented"."""


def _split(target: str) -> tuple[str, str]:
    module, _, attr = target.partition(":")
    return module, attr


def is_implemented(name: str) -> bool:
    """Whether this build has the role at all (not whether it imports: see ``load_role``)."""
    return name in ROLES and name not in NOT_IMPLEMENTED


def implemented_components() -> list[str]:
    return [name for name in ROLES if is_implemented(name)]


def load_role(name: str) -> type[Role]:
    """The role class of a component.

    ``NotImplementedComponent`` for a role listed in ``NOT_IMPLEMENTED``; ``BrokenInstallation``
    naming the module and the import error when an implemented role cannot be loaded.
    """
    if name not in ROLES:
        raise BadRequest(f'unknown component "{name}" (valid: {", ".join(ROLES)})')
    if name in NOT_IMPLEMENTED:
        raise NotImplementedComponent(f"component {name} is not implemented yet")
    module_name, attr = _split(ROLES[name])
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BrokenInstallation(
            f"component {name}: cannot import {module_name}: {exc} "
            "(the agola installation is incomplete or broken; reinstall the package)") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise BrokenInstallation(f"component {name}: module {module_name} has no {attr} "
                                 "(the agola installation is incomplete or broken; reinstall the package)")
    role: type[Role] = cls
    return role


def ordered(components: set[str]) -> list[str]:
    """Components in start order."""
    return [name for name in ROLES if name in components]
