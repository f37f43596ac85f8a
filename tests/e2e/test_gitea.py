"""The Gitea demo end to end: ``examples/gitea/demo.py`` against the Gitea emulator. The Gitea
scenarios (OAuth2 link, project, push/tag/fork PR runs cloned over SSH, statuses, bad signatures,
host key) run for the three forges in ``test_forges.py``.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import EXAMPLES
from tests.support.forge import ssh_available
from tests.support.services import missing


def test_the_gitea_demo_example(busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``examples/gitea/demo.py``, the README's one-command demo, ends with a successful run and
    the commit's statuses on the forge."""
    if not ssh_available():
        missing("openssh-server (sshd) and git-shell, for the Gitea emulator's SSH")
    import importlib.util

    spec = importlib.util.spec_from_file_location("gitea_demo", EXAMPLES / "gitea" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "project user/alice/hello created" in out and "package: hello from agola" in out
    assert "#   success  agola/hello/hello" in out and out.rstrip().endswith("result: success")
