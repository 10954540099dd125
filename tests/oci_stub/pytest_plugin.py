"""Pytest fixtures for the OCI Container Engine stub (register in tests/conftest.py pytest_plugins).

- ``oci_stub``: a started ``OCIStub`` (region us-ashburn-1) that knows one cluster
  (``tests.oci_stub.identity.CLUSTER``), stopped after the test;
- ``oci_identity``: an API-key user registered with that stub, its key and an OCI config file
  (profile DEFAULT) in the test's tmp_path.
"""

from __future__ import annotations

import pytest

from tests.oci_stub.identity import CLUSTER, REGION, OciIdentity, make_identity
from tests.oci_stub.server import OCIStub


@pytest.fixture
def oci_stub():
    stub = OCIStub(region=REGION).start()
    stub.add_cluster(CLUSTER)
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def oci_identity(oci_stub: OCIStub, tmp_path) -> OciIdentity:
    return make_identity(oci_stub, tmp_path / "oci")
