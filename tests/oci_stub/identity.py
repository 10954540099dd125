"""Test identities for the OCI stub: key pairs, PEM files and OCI config files on disk."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.oci_stub.server import OCIStub, fingerprint

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancystubexample0000000000000000000000000000000000"
USER = "ocid1.user.oc1..aaaaaaaauserstubexample00000000000000000000000000000000000000"
CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaaclusterstubexample0000000000000000000000c4tqmrsmy2d"
REGION = "us-ashburn-1"


@dataclasses.dataclass
class OciIdentity:
    """An API user whose public key the stub knows, with its files under ``workdir``."""

    workdir: Path
    tenancy: str
    user: str
    key: rsa.RSAPrivateKey
    key_file: Path
    config_file: Path
    fingerprint: str
    region: str
    pass_phrase: str | None = None

    def write_config(self, profiles: dict[str, dict[str, str]]) -> Path:
        """(Re)write the OCI config file with the given extra profiles besides DEFAULT."""
        lines = ["[DEFAULT]", f"user={self.user}", f"fingerprint={self.fingerprint}", f"tenancy={self.tenancy}", f"region={self.region}",
                 f"key_file={self.key_file}"]
        if self.pass_phrase:
            lines.append(f"pass_phrase={self.pass_phrase}")
        for name, values in profiles.items():
            lines.append(f"[{name}]")
            lines += [f"{k}={v}" for k, v in values.items()]
        self.config_file.write_text("\n".join(lines) + "\n")
        os.chmod(self.config_file, 0o600)
        return self.config_file


def write_key(path: Path, key: rsa.RSAPrivateKey, pass_phrase: str | None = None) -> Path:
    encryption = serialization.BestAvailableEncryption(pass_phrase.encode()) if pass_phrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption))
    os.chmod(path, 0o600)
    return path


def make_identity(stub: OCIStub, workdir: str | os.PathLike[str], *, pass_phrase: str | None = None, register: bool = True,
                  tenancy: str = TENANCY, user: str = USER, region: str = REGION) -> OciIdentity:
    """Generate a key pair, write key + config file (profile DEFAULT), register the key with the stub."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = write_key(workdir / "oci_api_key.pem", key, pass_phrase)
    ident = OciIdentity(workdir, tenancy, user, key, key_file, workdir / "oci_config", fingerprint(key.public_key()), region, pass_phrase)
    ident.write_config({})
    if register:
        stub.add_api_key(tenancy, user, key.public_key())
    return ident
