"""The telemetry environment (sidecar-metrics stub, a real Prometheus, the API server stub), once per session.

telemetry_check's and mesh_graph's tests share it; they are marked ``xdist_group("telemetry")`` so that under
``-n``/``--dist loadgroup`` one worker starts it once, not every worker.
"""

import pytest

from tests.fixtures.telemetry import stubs


@pytest.fixture(scope="session")
def telemetry_env(tmp_path_factory):
    env = stubs.start_telemetry_env(tmp_path_factory.mktemp("telemetry"))
    yield env
    stubs.stop_telemetry_env(env)


@pytest.fixture
def api(telemetry_env):
    """The API server stub, with its add-on behaviour restored after each test."""
    stub = telemetry_env.api
    saved = (dict(stub.services), list(stub.dashboards), dict(stub.traces), stub.kiali_state)
    stub.requests.clear()
    yield stub
    stub.services, stub.dashboards, stub.traces, stub.kiali_state = dict(saved[0]), list(saved[1]), dict(saved[2]), saved[3]
