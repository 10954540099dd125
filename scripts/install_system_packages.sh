#!/usr/bin/env bash
# System packages of the collection's modules and tests, installed where this script can:
#   graphviz    Graphviz `dot`: okemesh.istio.mesh_graph renders the service graph's SVG/PNG with it
#   prometheus  a real Prometheus server: the telemetry tests (and kubesim's add-on) scrape sidecar metrics with it
# Idempotent: installs only what is missing, with apt-get when running as root on Debian/Ubuntu, and keeps the
# packaged prometheus service disabled (the tests start their own server on a free loopback port).
# Elsewhere it prints how to install them and exits 0 (the tests that need them then fail, they do not skip).
set -euo pipefail

missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)

disable_packaged_prometheus() {
  [ "$(id -u)" = 0 ] || return 0
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet prometheus.service 2>/dev/null || systemctl is-active --quiet prometheus.service 2>/dev/null; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 || true
      echo "install_system_packages: disabled the packaged prometheus service"
    fi
  elif [ -L /etc/systemd/system/multi-user.target.wants/prometheus.service ]; then
    # no systemd running (containers): drop the enablement link so a later boot does not start it
    rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service
    echo "install_system_packages: disabled the packaged prometheus service"
  fi
  if [ -x /etc/init.d/prometheus ] && command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  disable_packaged_prometheus
  echo "install_system_packages: graphviz ($(dot -V 2>&1 | head -1)) and prometheus ($(prometheus --version 2>&1 | head -1)) are present"
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install_system_packages: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package's service from starting during the install where it exists (containers)
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  disable_packaged_prometheus
  command -v dot >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { echo "install_system_packages: apt-get did not provide dot and prometheus" >&2; exit 1; }
  echo "install_system_packages: ready ($(dot -V 2>&1 | head -1); $(prometheus --version 2>&1 | head -1))"
  exit 0
fi

cat >&2 <<MSG
install_system_packages: missing ${missing[*]} (needed by okemesh.istio.mesh_graph's pictures and by the telemetry tests).
Install them as root, then run make setup again:
  Debian/Ubuntu:  sudo apt-get install graphviz prometheus
  Fedora/RHEL:    sudo dnf install graphviz golang-github-prometheus
  macOS:          brew install graphviz prometheus
Execution environments get graphviz from bindep.txt.
MSG
exit 0
