"""Unit tests of the pure values-file editor (plugins/module_utils/_values.py)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.fixtures.textdiff import changed_lines

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, ValuesFileError
from ansible_collections.okemesh.istio.plugins.module_utils._values import (
    edit_values,
    format_path,
    normalize_set,
    normalize_unset,
    parse_path,
    render_scalar,
    same,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "values"
CLASSIC = (FIXTURES / "classic-istio-values.yaml").read_text()
MODERN = (FIXTURES / "modern-istiod-values.yaml").read_text()


def edit(text, set=None, unset=None, **kwargs):  # noqa: A002 - mirrors the module option
    return edit_values(text, sets=normalize_set(set), unsets=normalize_unset(unset), **kwargs)


def load(text):
    return YAML(typ="safe", pure=True).load(text)


def replace_line(text: str, old: str, new: str, occurrence_after: str | None = None) -> str:
    """Replace the first line equal to ``old`` (after the line ``occurrence_after``) by ``new``."""
    lines = text.split("\n")
    start = lines.index(occurrence_after) if occurrence_after else 0
    idx = lines.index(old, start)
    lines[idx] = new
    return "\n".join(lines)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("grafana.enabled", ("grafana", "enabled")),
        ("gateways.istio-ingressgateway.ports[0].port", ("gateways", "istio-ingressgateway", "ports", 0, "port")),
        ("a.b[-1]", ("a", "b", -1)),
        ("m[0][1].x", ("m", 0, 1, "x")),
        ('podAnnotations."prometheus.io/scrape"', ("podAnnotations", "prometheus.io/scrape")),
        ("podAnnotations.'sidecar.istio.io/inject'", ("podAnnotations", "sidecar.istio.io/inject")),
        (r"podAnnotations.prometheus\.io/port", ("podAnnotations", "prometheus.io/port")),
        (r'a."x\"y".b', ("a", 'x"y', "b")),
        ("a.'it''s'", ("a", "it's")),
        (r"a.b\[0\]", ("a", "b[0]")),
        (["a", "b.c", 0, "d"], ("a", "b.c", 0, "d")),
    ],
)
def test_parse_path(path, expected):
    assert parse_path(path) == expected


@pytest.mark.parametrize("path", ["", "a..b", "a.", "[0]", "a[x]", "a[0", 'a."b', "a[0]b", [], ["a", 1.5], ["a", True]])
def test_parse_path_rejects(path):
    with pytest.raises(InputError) as err:
        parse_path(path)
    assert "path" in err.value.msg.lower()


@pytest.mark.parametrize("comps", [("a", "b"), ("a", "b.c", 0, "d"), ("x", 'q"uote', -2), ("prometheus.io/scrape",), ("a b", "c")])
def test_format_path_round_trips(comps):
    assert parse_path(format_path(comps)) == comps


# --------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (8080, "8080"),
        (1.5, "1.5"),
        (1e20, "1.0e+20"),
        (float("inf"), ".inf"),
        ("true", '"true"'),
        ("on", '"on"'),
        ("No", '"No"'),
        ("null", '"null"'),
        ("~", '"~"'),
        ("", '""'),
        ("1.0", '"1.0"'),
        ("0755", '"0755"'),
        ("1e3", '"1e3"'),
        ("12:30", '"12:30"'),
        ("2026-11-26", '"2026-11-26"'),
        ("1.27.1", "1.27.1"),
        ("100m", "100m"),
        ("docker.io/istio", "docker.io/istio"),
        ("a: b", '"a: b"'),
        ("x #y", '"x #y"'),
        ("*", '"*"'),
        ("-", '"-"'),
        (" lead", '" lead"'),
        ('say "hi"', 'say "hi"'),
        ("tab\there", '"tab\\there"'),
        ("{{ .Values.x }}", '"{{ .Values.x }}"'),
    ],
)
def test_render_scalar_reads_back_with_its_type(value, text):
    assert render_scalar(value) == text
    assert same(load("k: " + text)["k"], value)


def test_render_scalar_keeps_quote_style():
    assert render_scalar("grafana:6", style="'") == "'grafana:6'"
    assert render_scalar("it's", style="'") == "'it''s'"
    assert render_scalar("plain", style='"') == '"plain"'
    # a number replacing a quoted string is written as a number: the type wins over the style
    assert render_scalar(5, style='"') == "5"


def test_same_is_type_aware():
    assert not same(True, "true")
    assert not same(1, True)
    assert not same(1, 1.0)
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same({"a": 1}, {"a": 1, "b": 2})


# --------------------------------------------------------------------------- the classic procedure


ADDONS = {"grafana.enabled": True, "prometheus.enabled": True, "servicegraph.enabled": True, "tracing.enabled": True}


def test_classic_addons_flip_exactly_the_enabled_lines():
    result = edit(CLASSIC, set=ADDONS)
    expected = CLASSIC
    for section in ("grafana:", "servicegraph:", "tracing:"):
        expected = replace_line(expected, "  enabled: false", "  enabled: true", occurrence_after=section)
    assert result.text == expected  # prometheus was already enabled: untouched
    assert result.rendering == "splice"
    assert [(c["path"], c["action"], c["before"], c["after"]) for c in result.changes] == [
        ("grafana.enabled", "update", False, True),
        ("servicegraph.enabled", "update", False, True),
        ("tracing.enabled", "update", False, True),
    ]
    assert len(changed_lines(CLASSIC, result.text)) == 6


def test_classic_second_run_changes_nothing():
    first = edit(CLASSIC, set=ADDONS)
    second = edit(first.text, set=ADDONS)
    assert second.text == first.text
    assert second.changes == []
    assert second.rendering == "none"


def test_type_awareness_string_true_is_not_boolean_true():
    result = edit(CLASSIC, set={"grafana.enabled": "true"})
    assert result.text == replace_line(CLASSIC, "  enabled: false", '  enabled: "true"', occurrence_after="grafana:")
    assert result.changes == [{"path": "grafana.enabled", "action": "update", "before": False, "after": "true", "before_type": "bool", "after_type": "str"}]
    back = edit(result.text, set={"grafana.enabled": True})
    assert back.text == replace_line(CLASSIC, "  enabled: false", "  enabled: true", occurrence_after="grafana:")
    assert back.changes[0]["before_type"] == "str" and back.changes[0]["after_type"] == "bool"


def test_number_vs_string_and_quote_style_kept():
    text = "a:\n  port: 80  # the port\n  tag: '1.0'\n  hub: \"docker.io/istio\"\n"
    result = edit(text, set={"a.port": "80", "a.tag": "1.1", "a.hub": "quay.io/istio"})
    assert result.text == 'a:\n  port: "80"  # the port\n  tag: \'1.1\'\n  hub: "quay.io/istio"\n'
    assert edit(result.text, set={"a.port": "80"}).changes == []


def test_servicegraph_port_and_nested_ingress_hosts():
    result = edit(CLASSIC, set={"servicegraph.service.externalPort": 8089, "tracing.ingress.hosts": ["tracing.example.com", "jaeger.example.com"]})
    expected = replace_line(CLASSIC, "    externalPort: 8088", "    externalPort: 8089", occurrence_after="servicegraph:")
    lines = expected.split("\n")
    idx = lines.index("      - tracing.local")
    lines[idx : idx + 1] = ["      - tracing.example.com", "      - jaeger.example.com"]
    assert result.text == "\n".join(lines)


def test_classic_set_into_empty_flow_mapping_keeps_trailing_comment_lines():
    result = edit(CLASSIC, set={"gateways.istio-ingressgateway.resources.limits": {"cpu": "100m", "memory": "128Mi"}})
    expected = CLASSIC.replace(
        "    resources: {}\n      # limits:\n",
        "    resources:\n      limits:\n        cpu: 100m\n        memory: 128Mi\n      # limits:\n",
    )
    assert result.text == expected


def test_classic_null_annotations_become_a_mapping():
    result = edit(CLASSIC, set={"servicegraph.ingress.annotations.kubernetes\\.io/ingress\\.class": "nginx"})
    lines = CLASSIC.split("\n")
    start = lines.index("servicegraph:")
    idx = lines.index("    annotations:", start)
    lines[idx] = "    annotations:\n      kubernetes.io/ingress.class: nginx"
    assert result.text == "\n".join(lines)


def test_keys_with_dots_list_form():
    result = edit(CLASSIC, set=[{"path": ["grafana", "service", "annotations", "prometheus.io/scrape"], "value": "true"}])
    lines = CLASSIC.split("\n")
    idx = lines.index("    annotations: {}", lines.index("grafana:"))
    lines[idx] = '    annotations:\n      prometheus.io/scrape: "true"'
    assert result.text == "\n".join(lines)
    assert result.changes[0]["path"] == 'grafana.service.annotations."prometheus.io/scrape"'


def test_list_index_edit_in_flush_list_with_comment_first():
    result = edit(CLASSIC, set={"gateways.istio-ingressgateway.ports[0].nodePort": 30080, "gateways.istio-ingressgateway.ports[-1].name": "dns"})
    expected = CLASSIC.replace("      name: http2\n      nodePort: 31380\n", "      name: http2\n      nodePort: 30080\n", 1)
    expected = expected.replace("      name: tcp-dns-tls\n", "      name: dns\n", 1)
    # ports[-1] is the last one (http2-grafana), not the dns one
    assert result.text != expected
    expected = CLASSIC.replace("      name: http2\n      nodePort: 31380\n", "      name: http2\n      nodePort: 30080\n", 1)
    expected = expected.replace("      name: http2-grafana\n", "      name: dns\n", 1)
    assert result.text == expected


def test_new_top_level_section_is_appended_at_the_end():
    result = edit(CLASSIC, set={"kiali.enabled": True, "meshConfig.accessLogFile": "/dev/stdout"})
    expected = replace_line(CLASSIC, "  enabled: false", "  enabled: true", occurrence_after="kiali:")
    expected += "meshConfig:\n  accessLogFile: /dev/stdout\n"
    assert result.text == expected


# --------------------------------------------------------------------------- modern layout, mixed list styles


def test_plain_round_trip_would_reindent_the_modern_fixture():
    """Guard for the fixture itself: it really mixes list styles, so a dump changes many lines."""
    yaml = YAML()
    out = io.StringIO()
    yaml.dump(yaml.load(MODERN), out)
    assert len(changed_lines(MODERN, out.getvalue())) > 20


@pytest.mark.parametrize(
    ("path", "value", "old_line", "new_line"),
    [
        ("_internal_defaults_do_not_set.global.tag", "1.28.0", "    tag: 1.27.1", "    tag: 1.28.0"),
        ("_internal_defaults_do_not_set.global.tag", "1.28", "    tag: 1.27.1", '    tag: "1.28"'),
        ("_internal_defaults_do_not_set.autoscaleEnabled", False, "  autoscaleEnabled: true", "  autoscaleEnabled: false"),
        ("_internal_defaults_do_not_set.traceSampling", 10.0, "  traceSampling: 1.0", "  traceSampling: 10.0"),
        (
            "_internal_defaults_do_not_set.global.proxy.startupProbe.failureThreshold",
            300,
            "        failureThreshold: 600 # 10 minutes",
            "        failureThreshold: 300 # 10 minutes",
        ),
        ("_internal_defaults_do_not_set.meshConfig.extensionProviders[1].skywalking.port", 11801, "          port: 11800", "          port: 11801"),
        ("_internal_defaults_do_not_set.global.podDNSSearchNamespaces[0]", "mesh", "    - global", "    - mesh"),
        ("_internal_defaults_do_not_set.global.caCerts[0].certSigners[0]", "x/y", "        - clusterissuers.cert-manager.io/istio-ca", "        - x/y"),
        ("_internal_defaults_do_not_set.global.logging.level", "default:debug", '      level: "default:info"', '      level: "default:debug"'),
        ("_internal_defaults_do_not_set.rollingMaxSurge", "50%", "  rollingMaxSurge: 100%", "  rollingMaxSurge: 50%"),
    ],
)
def test_modern_scalar_edit_touches_one_line(path, value, old_line, new_line):
    result = edit(MODERN, set={path: value})
    assert result.text == replace_line(MODERN, old_line, new_line)
    assert changed_lines(MODERN, result.text) == ["-" + old_line, "+" + new_line]


def test_modern_random_scalar_edits_leave_every_other_line_identical():
    """Scalar leaves of the modern fixture, each set to a new value: exactly one line changes."""
    data = load(MODERN)
    leaves = []

    def walk(node, comps):
        if isinstance(node, dict):
            for key, val in node.items():
                walk(val, (*comps, key))
        elif isinstance(node, list):
            for idx, val in enumerate(node):
                walk(val, (*comps, idx))
        elif not (isinstance(node, str) and "\n" in node):
            leaves.append((comps, node))

    walk(data, ())
    assert len(leaves) > 80
    rng = random.Random(7)
    for comps, old in rng.sample(leaves, 45):  # a fixed sample keeps the test quick; any seed must pass
        new = rng.choice([True, 42, "changed-value", "true", 3.25, None])
        if same(new, old):
            continue
        result = edit(MODERN, set=[{"path": list(comps), "value": new}])
        diff = changed_lines(MODERN, result.text)
        assert len(diff) == 2 and diff[0][0] == "-" and diff[1][0] == "+", (comps, diff)
        assert same(load(result.text) and _get(load(result.text), comps), new)


def _get(data, comps):
    for comp in comps:
        data = data[comp]
    return data


def test_modern_flow_empty_list_becomes_block_in_file_style():
    result = edit(MODERN, set={"_internal_defaults_do_not_set.tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]})
    expected = MODERN.replace(
        "  tolerations: []\n",
        "  tolerations:\n    - key: dedicated\n      operator: Exists\n      effect: NoSchedule\n",
    )
    assert result.text == expected


def test_modern_append_to_flush_list_keeps_flush_style():
    result = edit(
        MODERN,
        set={
            "_internal_defaults_do_not_set.global.podDNSSearchNamespaces": [
                "global",
                '{{ valueOrDefault .DeploymentMeta.Namespace "default" }}.global',
                "svc.example",
            ]
        },
    )
    expected = MODERN.replace(
        '    - "{{ valueOrDefault .DeploymentMeta.Namespace \\"default\\" }}.global"\n',
        '    - "{{ valueOrDefault .DeploymentMeta.Namespace \\"default\\" }}.global"\n    - svc.example\n',
    )
    assert result.text == expected


def test_modern_replace_block_literal_and_add_key_after_it():
    pem = "-----BEGIN CERTIFICATE-----\nMIIBother\n-----END CERTIFICATE-----\n"
    result = edit(MODERN, set={"_internal_defaults_do_not_set.global.caCerts[0].pem": pem, "_internal_defaults_do_not_set.global.caCerts[0].name": "root"})
    expected = MODERN.replace(
        "          MIIBtestonlynotarealcertificate\n          -----END CERTIFICATE-----\n",
        "          MIIBother\n          -----END CERTIFICATE-----\n        name: root\n",
    )
    assert result.text == expected


def test_modern_unset_keys_and_list_item():
    result = edit(
        MODERN,
        unset=[
            "_internal_defaults_do_not_set.meshConfig.extensionProviders[0]",
            "_internal_defaults_do_not_set.global.istiod",
            "_internal_defaults_do_not_set.does.not.exist",
        ],
    )
    expected = MODERN.replace(
        "      - name: otel\n        opentelemetry:\n          service: opentelemetry-collector.observability.svc.cluster.local\n          port: 4317\n", ""
    ).replace("    istiod:\n      enableAnalysis: false\n", "")
    assert result.text == expected
    assert [c["path"] for c in result.changes] == [
        "_internal_defaults_do_not_set.meshConfig.extensionProviders[0]",
        "_internal_defaults_do_not_set.global.istiod",
    ]


def test_unset_then_set_replaces_a_subtree():
    result = edit(MODERN, unset=["_internal_defaults_do_not_set.resources"], set={"_internal_defaults_do_not_set.resources.limits.cpu": 2})
    assert result.text == MODERN.replace("  resources:\n    requests:\n      cpu: 500m\n      memory: 2048Mi\n", "  resources:\n    limits:\n      cpu: 2\n", 1)
    assert result.rendering == "splice"


# --------------------------------------------------------------------------- override files


def test_new_override_file_with_nested_structures():
    result = edit(
        "",
        set={
            "global.hub": "registry.example.com/istio",
            "global.tag": "1.27.1",
            "pilot.resources": {"requests": {"cpu": "500m", "memory": "2Gi"}},
            "meshConfig.defaultConfig.proxyMetadata": {},
            "pilot.env": {"PILOT_ENABLE_STATUS": "true"},
            "gateways": [{"name": "ingress", "ports": [80, 443]}],
        },
    )
    assert result.text == (
        "global:\n"
        "  hub: registry.example.com/istio\n"
        "  tag: 1.27.1\n"
        "pilot:\n"
        "  resources:\n"
        "    requests:\n"
        "      cpu: 500m\n"
        "      memory: 2Gi\n"
        "  env:\n"
        '    PILOT_ENABLE_STATUS: "true"\n'
        "meshConfig:\n"
        "  defaultConfig:\n"
        "    proxyMetadata: {}\n"
        "gateways:\n"
        "  - name: ingress\n"
        "    ports:\n"
        "      - 80\n"
        "      - 443\n"
    )
    assert [c["action"] for c in result.changes] == ["create"] * 6
    assert edit(result.text, set={"global.tag": "1.27.1", "pilot.resources.requests.cpu": "500m"}).changes == []


def test_comment_only_file_gets_values_appended():
    result = edit("# overrides written by the istio role\n", set={"a.b": 1})
    assert result.text == "# overrides written by the istio role\na:\n  b: 1\n"


def test_no_trailing_newline_and_crlf():
    assert edit("a:\n  b: 1", set={"a.c": 2}).text == "a:\n  b: 1\n  c: 2"
    assert edit("a:\r\n  b: 1\r\n", set={"a.c": 2, "a.b": 3}).text == "a:\r\n  b: 3\r\n  c: 2\r\n"


# --------------------------------------------------------------------------- errors


def test_path_crossing_a_scalar_is_an_error_naming_the_path():
    with pytest.raises(InputError) as err:
        edit(CLASSIC, set={"grafana.enabled.really": True})
    assert "grafana.enabled.really" in err.value.msg and "crosses a scalar" in err.value.msg
    assert "'grafana.enabled' is a bool" in err.value.msg
    assert "false" not in err.value.msg  # the type is named, the file's value is not quoted
    assert err.value.details["key"] == "grafana.enabled.really"


def test_index_out_of_range_is_an_error():
    with pytest.raises(InputError) as err:
        edit(CLASSIC, set={"gateways.istio-egressgateway.ports[2].port": 8080})
    assert "list index 2 is out of range at 'gateways.istio-egressgateway.ports' (the list has 2 items)" in err.value.msg


def test_key_on_a_list_and_index_on_a_mapping_are_errors():
    with pytest.raises(InputError, match=r"is a list, so the next component must be an index"):
        edit(CLASSIC, set={"gateways.istio-egressgateway.ports.name": "x"})
    with pytest.raises(InputError, match=r"is a mapping, not a list"):
        edit(CLASSIC, set={"grafana[0]": "x"})


def test_create_false_refuses_missing_intermediates():
    with pytest.raises(InputError, match=r"'grafana.sidecar' does not exist and create is false"):
        edit(CLASSIC, set={"grafana.sidecar.enabled": True}, create=False)
    # a missing leaf is fine: create governs intermediates
    assert edit(CLASSIC, set={"grafana.persistSize": "1Gi"}, create=False).changes[0]["action"] == "create"


def test_not_yaml():
    with pytest.raises(ValuesFileError, match=r"/x/values.yaml is not valid YAML"):
        edit("a: [1, 2\nb: }\n", set={"a": 1}, source="/x/values.yaml")


def test_duplicate_keys_refused():
    with pytest.raises(ValuesFileError, match="not valid YAML"):
        edit("a: 1\na: 2\n", set={"b": 1})


def test_top_level_list_refused():
    with pytest.raises(ValuesFileError, match="top level of values.yaml is a list"):
        edit("- a\n- b\n", set={"a": 1}, source="values.yaml")


MULTI = "# first\na: 1\n---\n# second\nb:\n  c: false\n---\nd: 3\n"


def test_multi_document_refused_without_index():
    with pytest.raises(ValuesFileError, match="holds 3 YAML documents; set document"):
        edit(MULTI, set={"b.c": True})


def test_multi_document_with_index_edits_only_that_document():
    result = edit(MULTI, set={"b.c": True, "b.e": "x"}, document=1)
    assert result.text == "# first\na: 1\n---\n# second\nb:\n  c: true\n  e: x\n---\nd: 3\n"
    with pytest.raises(ValuesFileError, match="document index 5 does not exist"):
        edit(MULTI, set={"b.c": True}, document=5)


def test_set_option_shape_errors():
    with pytest.raises(InputError, match=r"set\[0\] must be a mapping with exactly the keys 'path' and 'value'"):
        normalize_set([{"path": "a"}])
    with pytest.raises(InputError, match="set must be a mapping"):
        normalize_set("a=b")
    with pytest.raises(InputError, match="Unsupported value type"):
        normalize_set({"a": object()})


# --------------------------------------------------------------------------- fallbacks


def test_merge_keys_fall_back_to_a_full_dump_that_reads_back():
    text = "base: &base\n  a: 1\n  b: 2\nderived:\n  <<: *base\n  b: 3\n"
    result = edit(text, set={"derived.c": 4})
    data = load(result.text)
    assert data["derived"] == {"a": 1, "b": 3, "c": 4}
    assert result.rendering in ("splice", "dump")


def test_edit_through_an_alias_is_refused_and_says_so():
    text = "base: &base\n  a: 1\nother: *base\n"
    with pytest.raises(ValuesFileError, match="anchors/aliases"):
        edit(text, set={"other.a": 2})


def test_edit_outside_aliases_still_splices():
    text = "base: &base\n  a: 1\nother: *base\nplain: 1\n"
    result = edit(text, set={"plain": 2})
    assert result.text == "base: &base\n  a: 1\nother: *base\nplain: 2\n"
    assert result.rendering == "splice"


def test_byte_order_mark_is_kept():
    result = edit("\ufeffa:\n  b: 1\n", set={"a.b": 2})
    assert result.text == "\ufeffa:\n  b: 2\n"


def test_existing_empty_file_without_changes_stays_empty_and_new_file_gets_braces():
    assert edit("", set={}).text == ""
    assert edit_values(None).text == "{}\n"
    assert edit_values(None, sets=normalize_set({"a": 1})).text == "a: 1\n"


# --------------------------------------------------------------------------- the safety net


@pytest.mark.parametrize(
    ("values", "corrupt"),
    [
        ({"grafana.enabled": True}, lambda new: new.replace("true", "tru")),  # wrong scalar
        ({"grafana.enabled": True}, lambda new: new + "\n  extra: 1"),  # extra key
        ({"grafana.enabled": True}, lambda new: new + "\n  replicaCount: 2"),  # duplicate sibling
        ({"grafana.persistSize": "1Gi"}, lambda new: new.replace("  persistSize", " persistSize")),  # broken indentation
        ({"grafana.persistSize": "1Gi"}, lambda new: new.replace("persistSize", "replicaCount")),  # duplicate child
        ({"meshConfig.x": 1}, lambda new: new.replace("meshConfig", "grafana")),  # duplicate top-level key
        ({"meshConfig.x": 1}, lambda new: new.replace("  x: 1", "x: 1")),  # new key at the wrong level
    ],
)
def test_a_splice_that_does_not_read_back_falls_back_to_a_dump(monkeypatch, values, corrupt):
    """Fault injection into the splice text: the read-back check must catch it (and the dump is right)."""
    from ansible_collections.okemesh.istio.plugins.module_utils import _values

    real_replace = _values._Splicer.replace
    monkeypatch.setattr(_values._Splicer, "replace", lambda self, start, end, new: real_replace(self, start, end, corrupt(new)))
    result = edit(CLASSIC, set=values)
    assert result.rendering == "dump"
    expected = load(CLASSIC)
    for path, value in values.items():
        top, key = path.split(".")
        expected.setdefault(top, {})[key] = value
    assert same(load(result.text), expected)


def test_when_neither_splice_nor_dump_reads_back_nothing_is_returned(monkeypatch):
    from ansible_collections.okemesh.istio.plugins.module_utils import _values

    real_replace = _values._Splicer.replace
    monkeypatch.setattr(_values._Splicer, "replace", lambda self, start, end, new: real_replace(self, start, end, new.replace("true", "1")))
    monkeypatch.setattr(_values, "_dump_document", lambda *a, **k: "grafana: {enabled: 1}\n")
    with pytest.raises(ValuesFileError, match="so that it reads back as intended"):
        edit(CLASSIC, set={"grafana.enabled": True}, source="values.yaml")


# --------------------------------------------------------------------------- randomized batches


_VALUES = [True, False, 0, 7, 2.5, None, "x", "true", "1.0", "a: b", "multi\nline\n", {}, [], {"k": 1, "n": {"m": "v"}}, [1, {"a": "b"}], ["p"], "", "#x"]


def _all_paths(node, comps=()):
    out = []
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return out
    for key, val in items:
        out.append((*comps, key))
        out += _all_paths(val, (*comps, key))
    return out


@pytest.mark.parametrize("fixture", ["classic", "modern"])
@pytest.mark.parametrize("seed", range(12))
def test_random_batches_read_back_as_an_independent_model(fixture, seed):
    """Random mixes of set/unset/create on the fixtures: the file reads back as plain dict/list edits predict, by splicing."""
    import copy

    from ansible_collections.okemesh.istio.plugins.module_utils._values import apply_set, apply_unset

    text = CLASSIC if fixture == "classic" else MODERN
    rng = random.Random(seed)
    data = load(text)
    paths = _all_paths(data)
    sets, unsets = [], []
    for _i in range(1 + seed % 5):
        comps = rng.choice(paths)
        roll = rng.random()
        if roll < 0.15:
            unsets.append(list(comps))
        elif roll < 0.35:
            sets.append({"path": [*comps, f"new{rng.randint(0, 3)}"], "value": rng.choice(_VALUES)})
        else:
            sets.append({"path": list(comps), "value": rng.choice(_VALUES)})
    expected = copy.deepcopy(data)
    try:
        for comps in unsets:
            apply_unset(expected, tuple(comps))
        for item in sets:
            apply_set(expected, tuple(item["path"]), copy.deepcopy(item["value"]))
    except InputError:
        with pytest.raises(InputError):
            edit(text, set=sets, unset=unsets)
        return
    result = edit(text, set=sets, unset=unsets)
    assert same(load(result.text), expected), (sets, unsets)
    assert result.rendering in ("splice", "none")
