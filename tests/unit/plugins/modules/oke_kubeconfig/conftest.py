"""Fixtures of the OCI Container Engine stub for the oke_kubeconfig module tests."""

from tests.oci_stub import pytest_plugin as _stub_fixtures

oci_stub = _stub_fixtures.oci_stub
oci_identity = _stub_fixtures.oci_identity
