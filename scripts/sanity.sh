#!/usr/bin/env bash
# ansible-test sanity on the collection, with no ignore entries.
# ansible-test needs the checkout at ansible_collections/okemesh/istio: copy the tracked (and
# untracked, not ignored) files into such a tree in a temporary directory and run there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/ansible_collections/okemesh/istio"
mkdir -p "$dest"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion --ignore-failed-read) | tar -xf - -C "$dest"
if compgen -G "$dest/tests/sanity/ignore-*.txt" >/dev/null; then
  echo "sanity: ignore files are not allowed (tests/sanity/ignore-*.txt)"; exit 1
fi
# ansible-test bootstraps pip in its virtual environments with a downloaded script; offline,
# give it ours (ensurepip + pip install) under the cache name it looks for (get_pip_<version>.py).
pip_version=$(grep -ho "pip='[0-9.]*'" "$root"/.venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1 | cut -d"'" -f2)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp "$root/scripts/ansible_test_pip_bootstrap.py" "$cache/get_pip_${pip_version//./_}.py"
cd "$dest"
# --venv: ansible-test builds its own virtual environments with the pinned requirements of each
# sanity test (pylint, validate-modules, ...), so they never disturb .venv.
exec ansible-test sanity --venv --python 3.11 --requirements --color no "$@"
