"""Run a module's main() in-process, as ansible-core's own unit tests do (patch_module_args)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(module: ModuleType, capsys: Any, args: dict) -> dict:
    """The module's result as exit_json/fail_json printed it (``failed`` is set on failure)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)
