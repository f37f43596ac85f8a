"""``ConfigstoreClient`` (HTTP) and the configstore's ``ActionHandler`` (in process) implement the
same ``ConfigstoreAPI``: same method names, parameters and defaults. The gateway tests use the
in-process handler until the configstore role serves §5.6; this keeps both interchangeable."""

from __future__ import annotations

import inspect

from agola.roleclients.configstore import ConfigstoreAPI, ConfigstoreClient, seg
from agola.services.configstore.actions import ActionHandler


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(cls, name)) for name, fn in vars(ConfigstoreAPI).items()
            if inspect.iscoroutinefunction(fn)}


def _shape(sig: inspect.Signature) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in sig.parameters.values()]


def test_client_and_action_handler_share_the_interface() -> None:
    api = _methods(ConfigstoreAPI)
    assert len(api) > 40
    for name, sig in api.items():
        for impl in (ConfigstoreClient, ActionHandler):
            assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
            assert _shape(inspect.signature(getattr(impl, name))) == _shape(sig), f"{impl.__name__}.{name}"


def test_refs_are_one_path_segment() -> None:
    assert seg("user/alice/team") == "user%2Falice%2Fteam"
    assert seg("plain") == "plain"
