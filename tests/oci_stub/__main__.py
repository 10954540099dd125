"""Run the OCI Container Engine stub: python -m tests.oci_stub --workdir DIR [--port N].

Writes an API key and an OCI config file (profile DEFAULT) into DIR, registers the key,
serves one cluster and prints a JSON line with url, cluster_id, config_file, region. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from tests.oci_stub.identity import CLUSTER, REGION, make_identity
from tests.oci_stub.server import OCIStub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.oci_stub", description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--region", default=REGION)
    parser.add_argument("--cluster-id", default=CLUSTER)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    stub = OCIStub(region=args.region, latency=args.latency).start()
    stub.add_cluster(args.cluster_id)
    ident = make_identity(stub, args.workdir, region=args.region)
    print(json.dumps({"url": stub.url, "cluster_id": args.cluster_id, "config_file": str(ident.config_file), "region": args.region}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
