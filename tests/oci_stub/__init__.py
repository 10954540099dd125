"""Local HTTP stub of the OCI Container Engine endpoint, for tests and benchmarks (not OCI)."""

from tests.oci_stub.identity import OciIdentity, make_identity
from tests.oci_stub.server import OCIStub, StubAuthError, StubCluster, fingerprint

__all__ = ["OCIStub", "OciIdentity", "StubAuthError", "StubCluster", "fingerprint", "make_identity"]
