"""Project-wide pytest configuration: the simulator's, the OCI stub's and the support layer's fixtures."""

pytest_plugins = ["kubesim.pytest_plugin", "tests.oci_stub.pytest_plugin", "tests.support.fixtures"]
