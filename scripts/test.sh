#!/usr/bin/env bash
# Run the project's checks. No argument: all of them (what `make test` and CI run).
# With arguments: only those stages (unit, kubesim, integration, sanity, lint, build, molecule), in
# order; stages between "(" and ")" run in the background, e.g.  scripts/test.sh "(" lint ")" unit
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
py="$root/.venv/bin/python"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("(" lint build sanity ")" unit "(" kubesim molecule ")" integration)
failed=()

run_stage() {
  local name=$1; shift
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
    failed+=("$name")
  fi
}

# pytest exits 5 when it collected nothing: that is a failure here, never hidden.
pytest_stage() { "$py" -m pytest -p no:cacheprovider "$@"; }

run_one() {
  local stage=$1
  case "$stage" in
    lint)
      run_stage ruff "$py" -m ruff check plugins tests bench scripts tools
      run_stage yamllint "$py" -m yamllint -s .
      run_stage ansible-lint "$root/.venv/bin/ansible-lint" --profile production --offline
      ;;
    unit) run_stage unit pytest_stage tests/unit -q -n "${OKEMESH_TEST_WORKERS:-2}" --dist loadgroup ;;
    build) run_stage build "$py" scripts/build_check.py ;;
    sanity) run_stage sanity bash scripts/sanity.sh ;;
    kubesim) run_stage kubesim pytest_stage tools/kubesim/tests -q -n "${OKEMESH_TEST_WORKERS:-2}" --durations=10 ;;
    # --dist load --maxschedchunk 1 hands tests out one by one, in order, as workers free up; tests/integration/conftest.py puts the longest first
    integration) run_stage integration pytest_stage tests/integration -q -n "${OKEMESH_TEST_WORKERS:-2}" --dist load --maxschedchunk 1 --durations=20 ;;
    molecule) run_stage molecule "$root/.venv/bin/molecule" test -s default ;;
    *) echo "unknown stage $stage (lint unit build sanity kubesim integration molecule)"; exit 2 ;;
  esac
}

# Stages run in order. Stages between "(" and ")" run in the background, their output held back
# and printed when everything else has ended; the stages of one group run one after the other, the
# groups side by side. The static checks run beside the unit tests; the kubesim tests (which wait
# half their time, on sockets and simulated delays) and molecule beside the playbook-level tests
# (which wait a quarter of theirs, on helm and rollouts). The unit tests run before them, on a
# lighter machine: their Prometheus-backed rates and deadlines are exact, not loose.
group=() bgpids=() bglogs=()
for stage in "${stages[@]}"; do
  case "$stage" in
    "(") group=(x) ;;
    ")")
      log=$(mktemp)
      ( failed=(); for s in "${group[@]:1}"; do run_one "$s"; done
        [ ${#failed[@]} -eq 0 ] || printf '%s\n' "${failed[@]}" > "$log.failed" ) > "$log" 2>&1 &
      bgpids+=("$!") bglogs+=("$log") group=() ;;
    *)
      if [ ${#group[@]} -gt 0 ]; then group+=("$stage"); else run_one "$stage"; fi ;;
  esac
done
for i in "${!bgpids[@]}"; do
  wait "${bgpids[$i]}"
  log=${bglogs[$i]}
  echo "=== background stages (they ran while the others ran):"
  cat "$log"
  if [ -s "$log.failed" ]; then mapfile -t more < "$log.failed"; failed+=("${more[@]}"); fi
  rm -f "$log" "$log.failed"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}"
  exit 1
fi
ran=(); for s in "${stages[@]}"; do [[ "$s" == "(" || "$s" == ")" ]] || ran+=("$s"); done
echo "all stages passed: ${ran[*]}"
