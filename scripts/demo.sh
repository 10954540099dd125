#!/usr/bin/env bash
# The main job. No argument: start kubesim (a local Kubernetes API *simulator*, not a real
# cluster) unless one is already running, then run site.yml against it (inventories/sim).
# With an inventory path: run site.yml against the real clusters it describes.
# `--stop`: stop the simulator started by an earlier run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
state="$root/.kubesim"
pidfile="$state/kubesim.pid"

sim_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "${1:-}" = "--stop" ]; then
  "$root/.venv/bin/python" -m kubesim --stop "$pidfile" | sed 's/^/demo: /'
  exit 0
fi

if [ -n "${1:-}" ]; then
  inventory=$1
  [ -e "$inventory" ] || { echo "demo: inventory '$inventory' does not exist (see inventories/example-oke/)"; exit 2; }
  shift
  exec ansible-playbook -i "$inventory" site.yml "$@"
fi

mkdir -p "$state"
# the project's stand-in Istio release, laid out as an unpacked release (inventories/sim reads it)
"$root/.venv/bin/python" tests/fixtures/stage_istio_release.py "$state/istio-release" >/dev/null
if sim_running; then
  echo "demo: reusing kubesim (pid $(cat "$pidfile")), kubeconfig $state/kubeconfig"
else
  "$root/.venv/bin/python" -m kubesim --kubeconfig "$state/kubeconfig" --wait-ready --pidfile "$pidfile" | sed 's/^/demo: /'
fi
export OKEMESH_SIM_KUBECONFIG="$state/kubeconfig"
status=0
ansible-playbook site.yml "$@" || status=$?
cat <<MSG

demo: the target was kubesim, a local Kubernetes API simulator (not a real cluster).
      Look around:   kubectl --kubeconfig $state/kubeconfig get pods -A
      Run again:     make demo        (converges; reports changed=0)
      Stop it:       make demo-stop
      Real clusters: make demo INVENTORY=inventories/example-oke   (see README, "Real clusters")
MSG
exit $status
