"""Project-wide pytest configuration: the kubesim fixtures are available to every test."""

pytest_plugins = ["tests.kubesim.pytest_plugin"]
