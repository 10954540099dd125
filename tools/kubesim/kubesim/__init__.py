"""kubesim: a Kubernetes API *simulator* for okemesh.istio's tests and demo (not a cluster).

``api/`` is the API server half (HTTP, store, patch, selectors, tables, protobuf, defaulting);
``behaviour/`` is the cluster half, one file per controller. Entry points: ``python -m kubesim``
(see ``--help``), :func:`kubesim.launcher.start` and the pytest plugin ``kubesim.pytest_plugin``.
See tools/kubesim/README.md.
"""
