"""Project-wide pytest configuration: the kubesim and OCI-stub fixtures are available to every test."""

pytest_plugins = ["tests.kubesim.pytest_plugin", "tests.oci_stub.pytest_plugin"]
