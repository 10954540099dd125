"""Helpers for kubesim's own tests: run the real kubectl / helm against a simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def run(ks, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [str(BIN / tool), *args]
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=ks.env(), timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def kubectl(ks, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    return run(ks, "kubectl", *args, **kw)


def kubectl_json(ks, *args: str) -> Any:
    return json.loads(kubectl(ks, *args, "-o", "json").stdout)


def helm(ks, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    return run(ks, "helm", *args, **kw)
