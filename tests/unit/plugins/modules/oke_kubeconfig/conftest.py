"""Fixtures of the oke_kubeconfig module tests: the module runner and its arguments (the OCI stub's fixtures
are registered in tests/conftest.py)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from tests.support.modules import on_target

from ansible_collections.okemesh.istio.plugins.modules import oke_kubeconfig
from tests.oci_stub.identity import CLUSTER


@pytest.fixture
def run(capsys):
    """Run the module's main() with the given arguments; return (result dict, failed flag).

    ``result["_raw"]`` is the whole JSON text the module printed (what Ansible would log).
    """

    def _run(**args):
        with on_target(), patch_module_args(args), pytest.raises(SystemExit) as exit_info:
            oke_kubeconfig.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        result["_raw"] = out
        return result, exit_info.value.code != 0

    return _run


@pytest.fixture
def args(oci_identity, oci_stub, tmp_path):
    """Module arguments for the stub's cluster, writing tmp_path/kube/config."""
    return dict(
        cluster_id=CLUSTER,
        dest=str(tmp_path / "kube" / "config"),
        config_file_location=str(oci_identity.config_file),
        service_endpoint=oci_stub.url,
        retries=0,
        timeout=5,
    )
