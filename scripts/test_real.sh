#!/usr/bin/env bash
# make test-real: a REAL Istio release through site.yml against kubesim (the local Kubernetes API
# simulator, which emulates what istiod does at run time). Not part of `make test`.
#
#   make test-real ISTIO_RELEASE=/path/to/istio-1.30.3   # an unpacked release (charts + samples)
#   make test-real [ISTIO_VERSION=1.30.3]                # download it from Istio's GitHub releases
#                                                        # (default: the istio role's istio_version)
#
# It fails unless: site.yml converges; a second run reports changed=0; injection_check finds
# every bookinfo pod injected; and a `helm upgrade` of istiod with one changed value succeeds
# and leaves the mesh working (webhooks still carry istiod's CA).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_NOCOLOR=1
say() { echo "test-real: $*"; }
die() { echo "test-real: FAILED: $*" >&2; exit 1; }

release=${ISTIO_RELEASE:-}
version=${ISTIO_VERSION:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/okemesh-test-real.XXXXXX")
pidfile="$work/kubesim.pid"
cleanup() {
  [ -f "$pidfile" ] && "$root/.venv/bin/python" -m kubesim --stop "$pidfile" >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# --- the release ---------------------------------------------------------------------------------
if [ -z "$release" ]; then
  # istio_version: the istio role's default unless ISTIO_VERSION says otherwise
  version=${version:-$(sed -n 's/^istio_version: *"\{0,1\}\([^"]*\)"\{0,1\}.*/\1/p' roles/istio/defaults/main.yml)}
  arch=$(uname -m); case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
  tarball="istio-$version-linux-$arch.tar.gz"
  url="https://github.com/istio/istio/releases/download/$version/$tarball"
  say "downloading $url"
  if ! curl -fsSL --retry 2 --connect-timeout 15 -o "$work/$tarball" "$url" \
      || ! curl -fsSL --retry 2 --connect-timeout 15 -o "$work/$tarball.sha256" "$url.sha256"; then
    die "could not download $url (or its .sha256). Without internet access, unpack a release yourself and run: make test-real ISTIO_RELEASE=/path/to/istio-$version"
  fi
  want=$(cut -d' ' -f1 "$work/$tarball.sha256")
  have=$(sha256sum "$work/$tarball" | cut -d' ' -f1)
  [ "$want" = "$have" ] || die "$tarball: sha256 $have does not match the published $want"
  tar -xzf "$work/$tarball" -C "$work"
  release="$work/istio-$version"
fi
[ -f "$release/manifests/charts/base/Chart.yaml" ] && [ -f "$release/samples/bookinfo/platform/kube/bookinfo.yaml" ] \
  || die "$release is not an unpacked Istio release (manifests/charts/base/Chart.yaml and samples/bookinfo missing)"
chart_version=$(sed -n 's/^version: *//p' "$release/manifests/charts/base/Chart.yaml" | tr -d '"')
version=${version:-$chart_version}
[ "$version" = "$chart_version" ] || die "ISTIO_VERSION $version but the charts in $release are $chart_version"
say "release $release (Istio $version)"

# --- kubesim -------------------------------------------------------------------------------------
"$root/.venv/bin/python" -m kubesim --kubeconfig "$work/kubeconfig" --wait-ready --pidfile "$pidfile" | sed 's/^/test-real: /'
export OKEMESH_SIM_KUBECONFIG="$work/kubeconfig" KUBECONFIG="$work/kubeconfig"
export HELM_CACHE_HOME="$work/helm-cache" HELM_CONFIG_HOME="$work/helm-config" HELM_DATA_HOME="$work/helm-data"
extra=(-i inventories/sim/hosts.yml -e "istio_release_dir=$release" -e "istio_version=$version")

recap() { sed -n 's/^sim-1 *: //p' "$1" | tail -1; }
changed() { recap "$1" | sed -n 's/.*changed=\([0-9]*\).*/\1/p'; }

# --- site.yml twice ------------------------------------------------------------------------------
say "site.yml, first run"
ansible-playbook site.yml "${extra[@]}" >"$work/first.log" 2>&1 || { tail -60 "$work/first.log"; die "site.yml did not converge (log above)"; }
say "first run:  $(recap "$work/first.log")"
say "site.yml, second run"
ansible-playbook site.yml "${extra[@]}" >"$work/second.log" 2>&1 || { tail -60 "$work/second.log"; die "the second site.yml run failed"; }
say "second run: $(recap "$work/second.log")"
if [ "$(changed "$work/second.log")" != "0" ]; then
  grep -B2 -A12 '^changed:' "$work/second.log" | head -80
  die "the second run reported changes (must be changed=0)"
fi

# --- injection check on bookinfo -----------------------------------------------------------------
check() {
  ansible-playbook tests/integration/playbooks/injection_check.yml -i localhost, -c local \
    -e "ansible_python_interpreter=$root/.venv/bin/python" -e "kubeconfig=$work/kubeconfig" \
    -e '{"check_namespaces": ["bookinfo"]}' -e "result_file=$work/$1.json" >"$work/$1.log" 2>&1 \
    || { tail -40 "$work/$1.log"; die "injection_check failed on bookinfo ($1)"; }
  "$root/.venv/bin/python" - "$work/$1.json" <<'PY' || die "injection_check: not every bookinfo pod is injected ($1)"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
print(f"test-real: injection_check: {s['pods']} pods, by status {s['by_status']}, {s['errors']} errors, {s['warnings']} warnings")
sys.exit(0 if s["pods"] >= 6 and s["by_status"].get("injected") == s["pods"] and s["errors"] == 0 else 1)
PY
}
check injection

# --- helm upgrade of istiod with one changed value ------------------------------------------------
say "helm upgrade istiod --reuse-values --set env.PILOT_TRACE_SAMPLING=5"
helm upgrade istiod "$release/manifests/charts/istio-control/istio-discovery" -n istio-system --reuse-values \
  --set env.PILOT_TRACE_SAMPLING=5 --wait --timeout 300s >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; die "helm upgrade istiod failed"; }
kubectl -n istio-system get deployment istiod -o jsonpath='{.spec.template.spec.containers[0].env}' | grep -q '"PILOT_TRACE_SAMPLING","value":"5"' \
  || die "the upgraded istiod Deployment does not carry PILOT_TRACE_SAMPLING=5"
kubectl -n istio-system rollout status deployment/istiod --timeout=120s >/dev/null || die "istiod did not roll out after the upgrade"
for i in $(seq 1 30); do
  bundle=$(kubectl get mutatingwebhookconfiguration istio-sidecar-injector -o jsonpath='{.webhooks[*].clientConfig.caBundle}')
  policy=$(kubectl get validatingwebhookconfiguration istio-validator-istio-system -o jsonpath='{.webhooks[*].failurePolicy}')
  [ -n "$bundle" ] && [ "$policy" != "Ignore" ] && break
  sleep 1
done
[ -n "$bundle" ] || die "after the upgrade the injector webhook has no caBundle"
[ "$policy" != "Ignore" ] || die "after the upgrade the validator is back to failurePolicy Ignore"
kubectl -n bookinfo rollout restart deployment >/dev/null
for d in $(kubectl -n bookinfo get deployments -o name); do
  kubectl -n bookinfo rollout status "$d" --timeout=120s >/dev/null || die "$d did not roll out after the upgrade"
done
check after-upgrade

say "PASSED: Istio $version from $release converged, re-ran with changed=0, bookinfo injected, istiod upgraded"
