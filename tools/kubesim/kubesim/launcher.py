"""Start and stop kubesim (the Kubernetes API simulator) from Python: the one launcher that the CLI
(``python -m kubesim --wait-ready --pidfile PATH``), the pytest plugin, the benches, the demo and
molecule all use.

The handle has ``.url``, ``.kubeconfig`` (path str), ``.token``, ``.context``, ``.ca`` (CA file),
``.settings(**changes) -> dict`` (PATCH the admin endpoint; no arguments = GET), ``.request()``
(a small authenticated JSON client), ``.env()`` (KUBECONFIG + venv PATH for subprocesses),
``.pid`` and ``.stop()``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

READY = "kubesim (Kubernetes API simulator) serving "


class KubesimHandle:
    context = "kubesim"

    def __init__(self, proc: subprocess.Popen, url: str, kubeconfig: Path, token: str, ca: Path | None, log: Path):
        self.proc = proc
        self.url = url
        self.kubeconfig = str(kubeconfig)
        self.token = token
        self.ca = str(ca) if ca else None
        self.log = log
        self.pid = proc.pid
        self._ssl = ssl.create_default_context(cafile=self.ca) if ca else None

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                headers: dict[str, str] | None = None, raw: bool = False) -> tuple[int, Any]:
        """Authenticated request to the simulator; returns (status, decoded JSON or bytes)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - local simulator
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:  # noqa: S310 - local simulator
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        if raw:
            return status, payload
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload

    def settings(self, **changes: Any) -> dict[str, Any]:
        status, body = self.request("PATCH" if changes else "GET", "/kubesim/v1/settings", changes if changes else None)
        if status != 200:
            raise ValueError(f"kubesim settings: HTTP {status}: {body}")
        return body

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("HELM_CACHE_HOME", str(Path(self.kubeconfig).parent / "helm-cache"))
        env.setdefault("HELM_CONFIG_HOME", str(Path(self.kubeconfig).parent / "helm-config"))
        env.setdefault("HELM_DATA_HOME", str(Path(self.kubeconfig).parent / "helm-data"))
        env.setdefault("KUBECACHEDIR", str(Path(self.kubeconfig).parent / "kube-cache"))
        # kubernetes.core keeps its discovery cache in $TMPDIR, keyed by host:port only: a simulator of an
        # earlier test may have served another API on this port, so this one's clients get their own
        tmp = Path(self.kubeconfig).parent / "tmp"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
        if extra:
            env.update(extra)
        return env

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> KubesimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(workdir: str | os.PathLike[str], *, behaviour: bool = True, insecure_http: bool = False,
          token: str | None = None, client_cert: bool = False, timeout: float = 30.0, kubeconfig: str | os.PathLike[str] | None = None,
          detach: bool = False, pidfile: str | os.PathLike[str] | None = None, **settings: Any) -> KubesimHandle:
    """Start a simulator subprocess (``python -m kubesim``) and wait until it serves.

    Its certificates and log go under ``workdir``; the kubeconfig too unless ``kubeconfig`` names a
    path.  ``detach`` starts it in a session of its own (it outlives the caller: the demo and
    molecule use that, with ``pidfile``); otherwise it is the caller's child (pytest, benches).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = Path(kubeconfig) if kubeconfig else workdir / "kubeconfig"
    log = workdir / "kubesim.log"
    token = token or secrets.token_hex(20)
    cmd = [sys.executable, "-m", "kubesim", "--port", "0", "--kubeconfig", str(kubeconfig), f"--token={token}",
           "--certs-dir", str(workdir / "pki")]
    if insecure_http:
        cmd.append("--insecure-http")
    if not behaviour:
        cmd.append("--no-behaviour")
    if client_cert:
        cmd.append("--client-cert")
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=detach)
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(READY):
                url = line[len(READY):].strip()
                break
        if url:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"kubesim exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)
    if not url:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"kubesim did not become ready in {timeout}s:\n{log.read_text(errors='replace')}")
    if pidfile:
        Path(pidfile).parent.mkdir(parents=True, exist_ok=True)
        Path(pidfile).write_text(f"{proc.pid}\n")
    return KubesimHandle(proc, url, kubeconfig, token, None if insecure_http else workdir / "pki" / "ca.crt", log)


def stop_pidfile(pidfile: str | os.PathLike[str], timeout: float = 5.0) -> bool:
    """Stop the simulator whose pid ``pidfile`` holds; False when none was running."""
    path = Path(pidfile)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return False
    running = True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        running = False
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        if running:
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return running
