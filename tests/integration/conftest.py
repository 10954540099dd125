"""Order of the playbook-level tests: the longest first.

The suite runs on a few xdist workers (``--dist load``, which hands tests out in collection
order as workers free up). A two-minute test that starts last leaves the other workers idle
while it runs, so the tests measured longest (``--durations``, 2-core machine) go first and the
short ones fill in behind them. Only the order changes; a test missing from the table runs after
these, in file order.
"""

from __future__ import annotations

import pytest

# node id prefix -> measured seconds (`make test`'s --durations=20 on a 2-core machine); keep roughly up to date
LONGEST_FIRST = {
    "test_istio_role.py::test_canary_round_trip": 147,
    "test_site.py::test_three_clusters": 145,
    "test_site_faults.py::test_site_converges_through_api_faults[error-500]": 95,
    "test_awx_runner.py::test_site_through_ansible_runner": 73,
    "test_site_faults.py::test_site_converges_through_api_faults[slow-watch-cut]": 61,
    "test_istio_role.py::test_install_check_mode_idempotent_then_upgrade": 37,
    "test_site_faults.py::test_site_converges_through_api_faults[throttled-429]": 35,
    "test_addons_role.py::test_toggles_converge_and_exposure": 30,
    "test_istio_role.py::test_ambient_profile": 29,
    "test_bookinfo_role.py::test_traffic_profiles_converge_when_switched": 27,
    "test_gateway_role.py::test_gateway_api_routing": 25,
    "test_gateway_role.py::test_gateway_installs_routes_and_serves_bookinfo": 23,
    "test_addons_role.py::test_default_addons_check_mode_install_idempotent": 20,
    "test_gateway_role.py::test_network_load_balancer": 18,
}


def _weight(item: pytest.Item) -> float:
    nodeid = item.nodeid.split("tests/integration/", 1)[-1]
    return max((secs for prefix, secs in LONGEST_FIRST.items() if nodeid.startswith(prefix)), default=0.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # stable: equal weights keep their collection order
    items.sort(key=_weight, reverse=True)
