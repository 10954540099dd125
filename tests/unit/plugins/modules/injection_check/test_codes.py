"""The CODES table (plugins/module_utils/_injection_codes.py) is the one source of finding texts.

Every row is complete, every (code, variant) is produced by some cluster state, and a change
to a row changes the finding and the report line built from it.
"""

from __future__ import annotations

import copy
import re
import string
from pathlib import Path

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _injection as inj
from ansible_collections.okemesh.istio.plugins.module_utils import _injection_codes as codes

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "pods"
CLUSTER = yaml.safe_load((FIXTURES / "cluster.yaml").read_text())
ALL_PODS = [yaml.safe_load(p.read_text()) for p in sorted(FIXTURES.glob("*.yaml")) if p.name != "cluster.yaml"]


def run(pods=(), namespaces=None, revision=None, **overrides) -> dict:
    c = copy.deepcopy(CLUSTER)
    c.update(overrides)
    cluster = inj.Cluster(namespaces=c["namespaces"], pods=copy.deepcopy(list(pods)), webhook_configurations=c["webhooks"],
                          deployments=c["deployments"], services=c["services"], endpoint_slices=c["endpoint_slices"],
                          daemonsets=c["daemonsets"])
    return inj.check(cluster, inj.CheckOptions(namespaces=namespaces, revision=revision))


def with_namespaces(ns_objects, names) -> dict:
    c = copy.deepcopy(CLUSTER)
    cluster = inj.Cluster(namespaces=ns_objects, pods=[], webhook_configurations=c["webhooks"], deployments=c["deployments"],
                          services=c["services"], endpoint_slices=c["endpoint_slices"], daemonsets=c["daemonsets"])
    return inj.check(cluster, inj.CheckOptions(namespaces=names))


def fields(template: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


def test_every_row_is_complete():
    sections = {codes.CONTROL_PLANE, codes.NAMESPACE, codes.SCOPE, codes.PODS}
    for code, entry in codes.CODES.items():
        assert code[:3] in ("IST", "OKM") and len(code) == 7, code
        assert entry.name and entry.name[0].isupper(), code
        assert entry.severity in (codes.ERROR, codes.WARNING), code
        assert entry.section in sections, code
        assert entry.texts, code
        for variant, text in entry.texts.items():
            assert text.message and text.remedy, (code, variant)
            if entry.section == codes.PODS:
                assert text.detail, (code, variant)  # what a workload's finding aggregates


def scenarios():
    no_ca = copy.deepcopy(CLUSTER["webhooks"])
    no_ca[0]["webhooks"][0]["clientConfig"]["caBundle"] = ""
    not_ready = copy.deepcopy(CLUSTER["deployments"])
    not_ready[0]["status"]["readyReplicas"] = 0
    ztunnel_down = copy.deepcopy(CLUSTER["daemonsets"])
    ztunnel_down[0]["status"]["numberReady"] = 0
    mixed_labels = {"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}
    mixed = CLUSTER["namespaces"] + [{"metadata": {"name": "mixed", "labels": mixed_labels}}]
    stale_no_injector = [p for p in ALL_PODS if p["metadata"]["name"].endswith("-old01")]
    ambient_pending = copy.deepcopy([p for p in ALL_PODS if p["metadata"]["namespace"] == "mesh-ambient"])
    for p in ambient_pending:
        p["status"]["phase"] = "Pending"
    return [
        run(ALL_PODS),
        run(namespaces=["plain", "nope", "bookinfo"], revision="1-28"),
        with_namespaces(mixed, ["mixed"]),
        run(namespaces=["bookinfo", "canary", "mesh-ambient"], webhooks=[], deployments=CLUSTER["deployments"][1:], daemonsets=[]),
        run(namespaces=["bookinfo", "mesh-ambient"], webhooks=no_ca, deployments=not_ready, daemonsets=ztunnel_down,
            endpoint_slices=CLUSTER["endpoint_slices"][1:]),
        run(namespaces=["bookinfo"], deployments=[]),
        run(namespaces=["canary"], services=[]),
        run(stale_no_injector, namespaces=["bookinfo"], webhooks=[]),
        run(ambient_pending, namespaces=["mesh-ambient"]),
        with_namespaces([{"metadata": {"name": "default"}}], None),  # nothing asks for injection
    ]


def test_every_code_and_variant_is_produced_by_some_cluster_state():
    """No dead rows: each text in the table is what some finding says."""
    produced = set()
    for result in scenarios():
        for f in result["findings"]:
            entry = codes.CODES[f["code"]]
            matches = [v for v, t in entry.texts.items() if _matches(t.message, f["message"])]
            assert matches, f
            produced.update((f["code"], v) for v in matches)
    expected = {(code, variant) for code, entry in codes.CODES.items() for variant in entry.texts}
    assert produced == expected


def _matches(template: str, message: str) -> bool:
    """The message is the template with its fields filled in."""
    pattern = ""
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        pattern += re.escape(literal) + (".+?" if name else "")
    return re.fullmatch(pattern, message) is not None


def test_a_row_changes_the_finding_and_its_report_line(monkeypatch):
    entry = codes.CODES["IST0103"]
    texts = dict(entry.texts)
    texts["restart"] = codes.Text("{owner} needs a restart ({what})", "restart {owner}", "gone")
    monkeypatch.setitem(codes.CODES, "IST0103", entry._replace(texts=texts, severity=codes.WARNING))
    result = run(ALL_PODS)
    f = next(x for x in result["findings"] if x["code"] == "IST0103")
    expected = ("deployment/reviews-v2 needs a restart (1 pod)", "restart deployment/reviews-v2", "warning")
    assert (f["message"], f["remedy"], f["severity"]) == expected
    lines = inj.report_lines(result)
    i = lines.index("‼ deployment/reviews-v2 needs a restart (1 pod) [IST0103]")
    assert lines[i + 1] == "    remedy: restart deployment/reviews-v2"


def test_a_passing_line_comes_from_the_table(monkeypatch):
    monkeypatch.setitem(codes.PASSED, "istiod_ready", "istiod {name} answers ({ready}/{replicas})")
    monkeypatch.setitem(codes.NAMESPACE_LINE, "sidecar", "{name} -> {revision}")
    lines = inj.report_lines(run(ALL_PODS))
    assert "√ istiod istiod answers (1/1)" in lines and "√ bookinfo -> default" in lines


@pytest.mark.parametrize("code", sorted(c for c, e in codes.CODES.items() if e.section == codes.PODS))
def test_pod_codes_use_only_the_facts_aggregation_gives(code):
    entry = codes.CODES[code]
    given = {"owner", "what", "details", "restart", "namespace", "first_pod"} if code != "IST0158" else {
        "count", "run", "details", "owners", "restarts"}
    for text in entry.texts.values():
        assert fields(text.message) | fields(text.remedy) <= given, code


@pytest.mark.parametrize(("owner", "remedy"), [
    ("deployment/web", "kubectl rollout restart deployment/web -n ns"),
    ("statefulset/db", "kubectl rollout restart statefulset/db -n ns"),
    ("replicaset/web-1", "kubectl delete pod -n ns <pods of replicaset web-1> (the ReplicaSet recreates them)"),
    ("job/migrate", "delete and re-create job/migrate in ns"),
    ("pod/debug", "kubectl delete pod debug -n ns, then create it again"),
    ("cronjob/x", "kubectl delete pod x -n ns, then create it again"),
])
def test_restart_remedy_per_owner_kind(owner, remedy):
    assert codes.restart_remedy("ns", owner) == remedy
