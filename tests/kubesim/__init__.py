"""kubesim: a Kubernetes API *simulator* for this project's tests (not a cluster).

See README.md in this directory.  Entry points: ``python -m tests.kubesim`` and the pytest
fixture ``kubesim`` from ``tests.kubesim.pytest_plugin``.
"""
