"""Unit tests for plugins/module_utils/_k8s.py: options, client factory, LIST/WATCH, cache.

The LIST/WATCH tests use the real kubernetes client against a small local HTTP stub (plain
HTTP on 127.0.0.1) that speaks just enough of the API: paged LISTs, chunked watch streams,
410 Gone and Status errors.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, KubernetesError


# ---------------------------------------------------------------------------------------
# options and configuration
# ---------------------------------------------------------------------------------------
def test_argspec_mirrors_kubernetes_core_names():
    assert sorted(_k8s.K8S_AUTH_ARGSPEC) == sorted(
        ["kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert", "client_key"]
    )
    assert _k8s.K8S_AUTH_ARGSPEC["api_key"]["no_log"] is True
    # a path is not a secret; the secrets inside an inline kubeconfig are masked one by one (test__k8s_secrets.py)
    assert _k8s.K8S_AUTH_ARGSPEC["kubeconfig"]["no_log"] is False
    assert _k8s.K8S_AUTH_ARGSPEC["validate_certs"]["aliases"] == ["verify_ssl"]


def test_doc_fragment_matches_argspec():
    from ansible_collections.okemesh.istio.plugins.doc_fragments.k8s_auth import ModuleDocFragment

    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert sorted(doc) == sorted(_k8s.K8S_AUTH_ARGSPEC)
    for name, spec in _k8s.K8S_AUTH_ARGSPEC.items():
        assert doc[name]["type"] == spec["type"], name
        assert doc[name].get("aliases", []) == spec.get("aliases", []), name


def test_env_defaults_like_kubernetes_core():
    env = {"K8S_AUTH_HOST": "https://h:6443", "K8S_AUTH_VERIFY_SSL": "no", "KUBECONFIG": "/a:/b", "K8S_AUTH_CONTEXT": "c1"}
    opts = _k8s.auth_params({"context": None, "host": None, "validate_certs": None}, env)
    assert opts["host"] == "https://h:6443" and opts["validate_certs"] is False
    assert opts["kubeconfig"] == "/a:/b" and opts["context"] == "c1"
    # K8S_AUTH_KUBECONFIG wins over KUBECONFIG, an explicit option wins over both
    assert _k8s.auth_params({}, dict(env, K8S_AUTH_KUBECONFIG="/k"))["kubeconfig"] == "/k"
    assert _k8s.auth_params({"kubeconfig": "/x", "context": "mine"}, env)["kubeconfig"] == "/x"
    assert _k8s.auth_params({"context": "mine"}, env)["context"] == "mine"


def _kubeconfig(server: str, token: str = "t0k3n", name: str = "sim") -> dict:  # noqa: S107 - test token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}, {"name": "other", "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def test_configuration_from_kubeconfig_file_and_overrides(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(_kubeconfig("https://10.0.0.1:6443")))
    cfg = _k8s.build_configuration({"kubeconfig": str(path)}, environ={})
    assert cfg.host == "https://10.0.0.1:6443"
    assert cfg.api_key["authorization"] == "Bearer t0k3n"
    cfg = _k8s.build_configuration({"kubeconfig": str(path), "host": "https://override:443", "api_key": "abc", "validate_certs": True}, environ={})
    assert cfg.host == "https://override:443" and cfg.api_key["authorization"] == "Bearer abc" and cfg.verify_ssl is True


def test_configuration_from_env_kubeconfig_and_dict(tmp_path):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(_kubeconfig("https://from-env:6443")))
    assert _k8s.build_configuration({}, environ={"KUBECONFIG": str(path)}).host == "https://from-env:6443"
    cfg = _k8s.build_configuration({"kubeconfig": _kubeconfig("https://from-dict:6443")}, environ={})
    assert cfg.host == "https://from-dict:6443"


def test_missing_kubeconfig_and_bad_context(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _k8s.build_configuration({"kubeconfig": str(tmp_path / "nope")}, environ={})
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(_kubeconfig("https://x:6443")))
    with pytest.raises(KubernetesError, match="context nope"):
        _k8s.build_configuration({"kubeconfig": str(path), "context": "nope"}, environ={})


# ---------------------------------------------------------------------------------------
# a tiny API stub
# ---------------------------------------------------------------------------------------
class Stub:
    """State shared with the handler: pods, a resourceVersion counter, scripted watch behaviour."""

    def __init__(self):
        self.pods = {f"p{i}": self.pod(f"p{i}", i + 1) for i in range(5)}
        self.rv = 5
        self.requests: list[str] = []
        self.watch_script: list = []  # per watch request: a list of events, or an int HTTP status
        self.fail_lists: list[int] = []  # HTTP statuses answered to the next LIST requests
        self.lock = threading.Lock()

    @staticmethod
    def pod(name, rv):
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


def make_handler(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_json(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            with stub.lock:
                stub.requests.append(self.path)
            if self.headers.get("Authorization") != "Bearer s3cret":
                return self.send_json(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "message": "Unauthorized", "code": 401})
            if url.path == "/api/v1/namespaces/forbidden/pods":
                return self.send_json(403, {"kind": "Status", "status": "Failure", "reason": "Forbidden",
                                            "message": 'pods is forbidden: User "x" cannot list resource "pods"', "code": 403})
            if url.path != "/api/v1/namespaces/ns/pods":
                return self.send_json(404, {"kind": "Status", "reason": "NotFound", "message": "the server could not find the requested resource", "code": 404})
            if q.get("watch") == "true":
                return self.watch()
            with stub.lock:
                fail = stub.fail_lists.pop(0) if stub.fail_lists else None
            if fail:
                data = json.dumps({"kind": "Status", "code": fail, "reason": "ServiceUnavailable", "message": "try again"}).encode()
                self.send_response(fail)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            items = [stub.pods[k] for k in sorted(stub.pods)]
            start = int(q.get("continue", "0"))
            limit = int(q.get("limit", "0")) or len(items)
            page = items[start:start + limit]
            meta = {"resourceVersion": str(stub.rv)}
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
            return self.send_json(200, {"kind": "PodList", "metadata": meta, "items": page})

        def watch(self):
            with stub.lock:
                script = stub.watch_script.pop(0) if stub.watch_script else []
            if isinstance(script, int):
                return self.send_json(script, {"kind": "Status", "code": script, "reason": "Expired", "message": "too old resource version"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in script:
                if isinstance(event, float):
                    time.sleep(event)  # the stub pacing its stream, not the code under test
                    continue
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@pytest.fixture
def stub():
    state = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def kube(stub, token="s3cret"):  # noqa: S107 - the stub's test token
    return _k8s.Kube(_k8s.get_api_client({"host": stub.url, "api_key": token}, environ={}))


def test_list_follows_continue(stub):
    items, rv = kube(stub).list("/api/v1/namespaces/ns/pods", limit=2)
    assert [i["metadata"]["name"] for i in items] == ["p0", "p1", "p2", "p3", "p4"]
    assert rv == "5"
    assert len([r for r in stub.requests if "limit=2" in r]) == 3


def test_status_errors_become_kubernetes_error(stub):
    with pytest.raises(KubernetesError) as exc:
        kube(stub).list("/api/v1/namespaces/forbidden/pods")
    err = exc.value
    assert err.details["status"] == 403 and err.details["reason"] == "Forbidden"
    assert 'cannot list resource "pods"' in err.msg
    with pytest.raises(KubernetesError) as exc:
        kube(stub, token="wrong").list("/api/v1/namespaces/ns/pods")
    assert exc.value.details["status"] == 401
    assert "wrong" not in exc.value.msg


def test_unreachable_api():
    k = _k8s.Kube(_k8s.get_api_client({"host": "http://127.0.0.1:9", "api_key": "x"}, environ={}))
    with pytest.raises(KubernetesError, match="cannot reach the Kubernetes API"):
        k.list("/api/v1/pods")


def test_watch_streams_events_as_they_arrive(stub):
    stub.watch_script = [[{"type": "ADDED", "object": Stub.pod("p9", 6)}, 0.3, {"type": "DELETED", "object": Stub.pod("p0", 7)}]]
    seen = []
    start = time.monotonic()
    for event in kube(stub).watch("/api/v1/namespaces/ns/pods", "5", 5):
        seen.append((event["type"], round(time.monotonic() - start, 1)))
    assert [s[0] for s in seen] == ["ADDED", "DELETED"]
    assert seen[0][1] < 0.25  # the first event is delivered before the stream ends
    watch_req = [r for r in stub.requests if "watch=true" in r][0]
    assert "resourceVersion=5" in watch_req and "allowWatchBookmarks=true" in watch_req


def test_cache_applies_events_and_relists_on_410(stub):
    stub.watch_script = [
        [{"type": "MODIFIED", "object": Stub.pod("p1", 8)}, {"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
        [0.1, {"type": "ADDED", "object": Stub.pod("p7", 12)}],
        [5.0],
    ]
    cache = _k8s.Cache(kube(stub), [{"key": "pods", "path": "/api/v1/namespaces/ns/pods"}])
    cache.list_all()
    assert len(cache.get("pods")) == 5
    stub.pods["p5"] = Stub.pod("p5", 11)  # appears only through the re-LIST after 410
    deadline = time.time() + 5
    cache.start_watches({"pods"}, deadline)
    names = set()
    while "p7" not in names:
        assert cache.wait_for_changes(deadline) > 0, "deadline reached without the expected events"
        names = {p["metadata"]["name"] for p in cache.get("pods")}
    cache.close()
    assert {"p5", "p7"} <= names
    assert cache.relists == 1
    assert sum(1 for r in stub.requests if "watch=true" in r) >= 2


def test_cache_http_410_on_watch_start(stub):
    stub.watch_script = [410, [{"type": "ADDED", "object": Stub.pod("p8", 20)}], [5.0]]
    cache = _k8s.Cache(kube(stub), [{"key": "pods", "path": "/api/v1/namespaces/ns/pods"}])
    cache.list_all()
    deadline = time.time() + 5
    cache.start_watches({"pods"}, deadline)
    while "ns/p8" not in {f"ns/{p['metadata']['name']}" for p in cache.get("pods")}:
        assert cache.wait_for_changes(deadline) > 0
    cache.close()
    assert cache.relists == 1


def test_cache_wait_returns_zero_at_deadline(stub):
    stub.watch_script = [[5.0]]
    cache = _k8s.Cache(kube(stub), [{"key": "pods", "path": "/api/v1/namespaces/ns/pods"}])
    cache.list_all()
    deadline = time.time() + 0.3
    cache.start_watches({"pods"}, deadline)
    start = time.monotonic()
    assert cache.wait_for_changes(deadline) == 0
    assert 0.2 < time.monotonic() - start < 5.0  # it waited for the deadline, and it ended
    cache.close()


def test_optional_and_fallback_resources(stub):
    cache = _k8s.Cache(
        kube(stub),
        [
            {"key": "missing", "path": "/apis/x/v1/things", "optional": True},
            {"key": "slices", "path": "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices",
             "fallback": {"key": "pods", "path": "/api/v1/namespaces/ns/pods"}},
        ],
    )
    cache.list_all()
    assert cache.get("missing") == [] and len(cache.get("pods")) == 5
    with pytest.raises(KubernetesError) as exc:
        _k8s.Cache(kube(stub), [{"key": "x", "path": "/apis/x/v1/things"}]).list_all()
    assert exc.value.details["status"] == 404


def test_token_from_kubeconfig_is_sent(stub, tmp_path):
    """kubernetes 36.0.0 drops kubeconfig tokens with auth_settings=['BearerToken']; Kube must not."""
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(_kubeconfig(stub.url, token="s3cret")))
    k = _k8s.Kube(_k8s.get_api_client({"kubeconfig": str(path)}, environ={}))
    items, _rv = k.list("/api/v1/namespaces/ns/pods")
    assert len(items) == 5


def test_list_retries_429_and_5xx(stub):
    stub.fail_lists = [503, 429]
    items, _rv = kube(stub).list("/api/v1/namespaces/ns/pods")
    assert len(items) == 5 and stub.fail_lists == []
    stub.fail_lists = [500, 500, 500, 500]
    k = kube(stub)
    k.policy = _k8s.RetryPolicy(retries=3)
    with pytest.raises(KubernetesError) as exc:
        k.list("/api/v1/namespaces/ns/pods")
    assert exc.value.details["status"] == 500 and "try again" in exc.value.msg
    assert stub.fail_lists == []  # 1 try + 3 retries
    assert k.stats.count == 3 and exc.value.details["retries"] == 3
