"""python -m kubesim — start (or stop) the Kubernetes API simulator.

In the foreground it prints ``kubesim (Kubernetes API simulator) serving https://127.0.0.1:PORT``
when ready and runs until SIGTERM/SIGINT.  ``--wait-ready --pidfile PATH`` starts it in the
background instead, returns once it serves (exit 1 with its log when it cannot start) and
records its pid; ``--stop PIDFILE`` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from .cluster import Cluster
from .settings import Settings


def write_kubeconfig(path: Path, url: str, token: str, ca_pem: bytes | None, client_pem: tuple[bytes, bytes] | None = None) -> None:
    import base64

    import yaml

    cluster: dict = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict = {"token": token}
    if client_pem is not None:
        user["client-certificate-data"] = base64.b64encode(client_pem[0]).decode()
        user["client-key-data"] = base64.b64encode(client_pem[1]).decode()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": cluster}],
        "users": [{"name": "kubesim-admin", "user": user}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim-admin", "namespace": "default"}}],
        "current-context": "kubesim",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kubesim", description="kubesim: a Kubernetes API simulator (not a cluster)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--kubeconfig", help="write a kubeconfig (mode 0600) for this simulator here")
    p.add_argument("--token", help="bearer token (default: random)")
    p.add_argument("--insecure-http", action="store_true", help="serve plain HTTP instead of HTTPS")
    p.add_argument("--certs-dir", help="where to write ca.crt/server.crt/server.key (default: next to the kubeconfig or a temp dir)")
    p.add_argument("--client-cert", action=argparse.BooleanOptionalAction, default=False,
                   help="also put an x509 client certificate (CN=kubesim-admin, O=system:masters) into the kubeconfig and accept it "
                        "when a request carries no Authorization header (default: off, token only; useful with clients that "
                        "drop kubeconfig bearer tokens, such as kubernetes==36.0.0's Python client)")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", help="any field of kubesim/settings.py")
    p.add_argument("--no-behaviour", action="store_true", help="do not install the cluster behaviour (kubesim/behaviour)")
    p.add_argument("--wait-ready", action="store_true",
                   help="start in the background, return once it serves (prints the serving line; needs --kubeconfig)")
    p.add_argument("--pidfile", help="with --wait-ready: write the background simulator's pid here")
    p.add_argument("--state-dir", help="with --wait-ready: where its log and certificates go (default: next to the kubeconfig)")
    p.add_argument("--stop", metavar="PIDFILE", help="stop the simulator whose pid PIDFILE holds, then exit")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    settings = Settings()
    changes = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"kubesim: --set expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        changes[name.strip()] = value
    try:
        settings.update(changes)
    except ValueError as exc:
        print(f"kubesim: {exc}", file=sys.stderr)
        return 2
    token = args.token or secrets.token_hex(20)
    cluster = Cluster(settings, token)
    cluster.bootstrap()

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(512)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    host_in_url = f"[{args.host}]" if ":" in args.host else args.host

    ssl_ctx = None
    ca_pem = None
    client_pem = None
    if not args.insecure_http:
        from .api.tlsutil import make_certs, server_context

        certs_dir = Path(args.certs_dir) if args.certs_dir else (
            Path(args.kubeconfig).resolve().parent / "kubesim-pki" if args.kubeconfig else Path(tempfile.mkdtemp(prefix="kubesim-pki-")))
        ca, crt, key = make_certs(certs_dir, [args.host])
        ca_pem = ca.read_bytes()
        cluster.set_root_ca(ca_pem.decode())
        ssl_ctx = server_context(crt, key, ca if args.client_cert else None)
        if args.client_cert:
            client_pem = ((certs_dir / "client.crt").read_bytes(), (certs_dir / "client.key").read_bytes())
            cluster.client_cert_auth = True
    scheme = "http" if args.insecure_http else "https"
    cluster.url = f"{scheme}://{host_in_url}:{port}"

    if not args.no_behaviour:
        cluster.install_behaviour()

    from .api.server import make_app

    app = make_app(cluster)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ssl_ctx)
    await site.start()
    if args.kubeconfig:
        write_kubeconfig(Path(args.kubeconfig), cluster.url, token, ca_pem, client_pem)
    print(f"kubesim (Kubernetes API simulator) serving {cluster.url}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    cluster.stop_event.set()
    cluster.store.stopped.set()
    await runner.cleanup()
    return 0


def background(args: argparse.Namespace) -> int:
    """--wait-ready: one launcher for the demo, molecule and scripts (kubesim.launcher.start)."""
    from .launcher import start

    if not args.kubeconfig:
        print("kubesim: --wait-ready needs --kubeconfig PATH", file=sys.stderr)
        return 2
    kubeconfig = Path(args.kubeconfig).resolve()
    state = Path(args.state_dir).resolve() if args.state_dir else kubeconfig.parent
    settings = dict(item.partition("=")[::2] for item in args.set)
    try:
        handle = start(state, kubeconfig=kubeconfig, behaviour=not args.no_behaviour, insecure_http=args.insecure_http,
                       token=args.token, client_cert=args.client_cert, detach=True, pidfile=args.pidfile, **settings)
    except RuntimeError as exc:
        print(f"kubesim: {exc}", file=sys.stderr)
        return 1
    print(f"kubesim (Kubernetes API simulator) serving {handle.url} (pid {handle.pid}, log {handle.log})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stop:
        from .launcher import stop_pidfile

        print("kubesim: stopped" if stop_pidfile(args.stop) else "kubesim: was not running", flush=True)
        return 0
    if args.wait_ready:
        return background(args)
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
