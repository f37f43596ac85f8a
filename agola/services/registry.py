"""The one place mapping component names to role classes, imported lazily.

To plug a role in, create ``agola/services/<name>/role.py`` with a ``<Name>Role(Role)`` class whose
``name`` is the component name; the entry below already points there. Nothing else to register.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from agola.config import ALL_COMPONENTS
from agola.errors import BadRequest

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


class NotImplementedComponent(BadRequest):
    """The component is known but its role module does not exist (yet)."""


def _split(target: str) -> tuple[str, str]:
    module, _, attr = target.partition(":")
    return module, attr


def is_implemented(name: str) -> bool:
    """Whether the role's module exists, without importing the module itself."""
    module, _ = _split(ROLES[name])
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def implemented_components() -> list[str]:
    return [name for name in ROLES if is_implemented(name)]


def load_role(name: str) -> type[Role]:
    """The role class of a component; ``NotImplementedComponent`` when its module is missing."""
    if name not in ROLES:
        raise BadRequest(f'unknown component "{name}" (valid: {", ".join(ROLES)})')
    module_name, attr = _split(ROLES[name])
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this role's module is absent" means not implemented; a missing import *inside*
        # an existing module is a real bug and must surface as such.
        if exc.name and module_name.startswith(exc.name):
            raise NotImplementedComponent(f"component {name} is not implemented yet") from None
        raise
    try:
        cls: type[Role] = getattr(module, attr)
    except AttributeError:
        raise NotImplementedComponent(
            f"component {name} is not implemented yet ({module_name} has no {attr})") from None
    return cls


def ordered(components: set[str]) -> list[str]:
    """Components in start order."""
    return [name for name in ROLES if name in components]
