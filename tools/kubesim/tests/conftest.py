"""kubesim's own tests: the simulator's fixtures (a fresh simulator per test)."""

pytest_plugins = ["kubesim.pytest_plugin"]
