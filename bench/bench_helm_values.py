"""Benchmark okemesh.istio.helm_values: 20 path edits in a ~3,000-line values file.

The file is built from tests/fixtures/values/modern-istiod-values.yaml (mixed list styles,
comments, flow `{}`/`[]`, a block scalar): its body is repeated under nine component keys.
The 20 edits mix scalar flips, type changes, inserts into `{}`, new nested keys, list-item
edits, an append to a flush-style list and a removal.

Measured (median of --repeat runs; each run on a fresh copy of the file):

* ``edit_values`` in-process (parse, plan, splice, re-parse to verify) - the pure cost;
* ``edit_values_file`` in-process - the service the module calls (lock, bounded read, edit,
  change check, temporary file, rename);
* the module as a process (``python helm_values.py args.json``: interpreter start, imports,
  read, edit, atomic write) - what Ansible executes on the target;
* the module task inside ``ansible-playbook`` (connection local), read from the
  ansible.posix.json callback's task duration - "a module run including Ansible overhead";
  the first task pays the one-off AnsiballZ build of the module, so the edit is repeated
  (idempotent, no write), then redone warm on a restored copy; an ``ansible.builtin.stat``
  task of the same file gives the floor of Ansible's per-task overhead on this machine;
* the whole ``ansible-playbook`` wall time (start-up included), for reference.

Also prints how many lines the edit changed (splice) against a plain ruamel.yaml round trip
of the same file. Numbers only: it asserts nothing. Target from the issue: under 1 s per
module run including Ansible overhead.

    .venv/bin/python bench/bench_helm_values.py [--repeat 5] [--copies 9]

Hostile and large inputs (issue 14): ``--large 1,8,50`` runs the module as a process on
files of about 1, 8 and 50 MB (one edit each) and ``--alias-bomb`` on the 299-byte file of
8 levels x 10 aliases; each prints wall time, peak memory (max RSS of the module process)
and the outcome. ``--collection DIR`` runs another checkout (for a before/after comparison:
``git archive <commit>`` into DIR/ansible_collections/okemesh/istio); ``--module-arg
KEY=VALUE`` adds a module option (for example ``max_file_size=104857600`` to raise the
bound); ``--timeout`` stops a run that takes longer and ``--memory-limit`` caps its address space (default
4 GiB: the alias bomb grew past 22 GiB in 400 s before the bounds), the result then says so.

    .venv/bin/python bench/bench_helm_values.py --large 1,8,50 --alias-bomb [--timeout 400]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.okemesh.istio.plugins.module_utils._values import (
    edit_values,
    normalize_set,
    normalize_unset,
)
from ansible_collections.okemesh.istio.plugins.module_utils._values_file import edit_values_file
from ruamel.yaml import YAML

from tests.fixtures.textdiff import changed_lines
from tests.fixtures.values.hostile import ALIAS_BOMB

REPO = Path(__file__).resolve().parents[1]

FIXTURE = REPO / "tests" / "fixtures" / "values" / "modern-istiod-values.yaml"
MODULE = REPO / "plugins" / "modules" / "helm_values.py"
BIN = Path(sys.executable).parent


def build_file(copies: int) -> str:
    text = FIXTURE.read_text()
    head, body = text.split("_internal_defaults_do_not_set:\n", 1)
    parts = [head]
    for i in range(copies):
        parts.append(f"# ---- component {i} ----\ncomponent{i}:\n{body}\n")
    return "".join(parts)


def edits(copies: int) -> tuple[dict, list]:
    c = [f"component{i % copies}" for i in range(copies)]
    sets = {
        f"{c[0]}.autoscaleEnabled": False,
        f"{c[0]}.global.tag": "1.28.0",
        f"{c[1]}.global.hub": "registry.example.com/istio",
        f"{c[1]}.replicaCount": 3,
        f"{c[2]}.traceSampling": 5.0,
        f"{c[2]}.global.logAsJson": True,
        f"{c[3]}.podAnnotations.prometheus\\.io/scrape": "true",
        f"{c[3]}.nodeSelector": {"kubernetes.io/os": "linux"},
        f"{c[4]}.resources.limits": {"cpu": "2", "memory": "4Gi"},
        f"{c[4]}.global.proxy.resources.requests.cpu": "50m",
        f"{c[5]}.meshConfig.extensionProviders[0].opentelemetry.port": 4318,
        f"{c[5]}.global.podDNSSearchNamespaces[0]": "mesh",
        f"{c[6]}.tolerations": [{"key": "dedicated", "operator": "Exists"}],
        f"{c[6]}.sidecarInjectorWebhook.enableNamespacesByDefault": True,
        f"{c[7]}.global.proxy.startupProbe.failureThreshold": 300,
        f"{c[7]}.telemetry.v2.stackdriver.enabled": True,
        f"{c[8]}.global.nativeSidecars": False,
        f"{c[8]}.meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE": "true",
        f"{c[8]}.newSection.enabled": True,
    }
    unsets = [f"{c[0]}.experimental"]
    return sets, unsets


def median_time(fn, repeat: int) -> float:
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def changed_line_count(before: str, after: str) -> int:
    """Lines removed + added, by GNU diff (a real LCS; difflib misaligns the repeated sections)."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.write_text(before)
        b.write_text(after)
        try:
            out = subprocess.run(["diff", str(a), str(b)], capture_output=True, text=True, check=False).stdout
        except FileNotFoundError:
            return len(changed_lines(before, after))
    return sum(1 for line in out.splitlines() if line[:2] in ("< ", "> ") or line in ("<", ">"))


def run_measured(cmd: list[str], env: dict, timeout: float, memory_mib: int) -> tuple[float, int, str, str]:
    """Run ``cmd`` with at most ``memory_mib`` of address space; return (wall seconds, peak RSS in MiB, output, how it ended)."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (memory_mib * 1048576, memory_mib * 1048576))

    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=limit_memory)
        ended = "exit"
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                ended = "killed after %.0f s" % timeout
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        return wall, usage.ru_maxrss // 1024, out.read().decode("utf-8", "replace"), ended


def outcome(stdout: str, ended: str) -> str:
    if ended != "exit":
        return ended
    try:
        result = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        if "MemoryError" in stdout:
            return "MemoryError (the memory limit was reached)"
        return "no JSON result: " + " ".join(stdout.split())[-300:]
    if "MemoryError" in stdout:
        return "MemoryError (the memory limit was reached)"
    if result.get("failed"):
        return "failed: " + result.get("msg", "")[:300]
    return "changed=%s rendering=%s" % (result.get("changed"), result.get("rendering"))


def hostile(opts) -> None:
    """The large-file and alias-bomb runs of the module as a process."""
    collection = Path(opts.collection).absolute()
    module = collection / "plugins" / "modules" / "helm_values.py"
    env = dict(os.environ, PYTHONPATH=str(collection.parents[2]))
    extra = dict(item.split("=", 1) for item in opts.module_arg)
    for key, value in list(extra.items()):
        extra[key] = int(value) if value.isdigit() else value
    print(f"module: {module}; extra options: {extra or 'none'}; timeout {opts.timeout:.0f} s; memory limit {opts.memory_limit} MiB")
    body = FIXTURE.read_text().split("_internal_defaults_do_not_set:\n", 1)[1]
    with tempfile.TemporaryDirectory(prefix="bench-helm-values-large-") as tmp:
        work = Path(tmp)
        values = work / "values.yaml"
        args_file = work / "args.json"
        cases = []
        for megabytes in [float(m) for m in opts.large.split(",")] if opts.large else []:
            copies = max(1, int(megabytes * 1024 * 1024 / (len(body) + 40)))
            text = "".join(f"component{i}:\n{body}\n" for i in range(copies))
            cases.append((f"{len(text) / 1048576:.1f} MB values file ({len(text.splitlines())} lines)", text, {"component0.replicaCount": 3}))
        if opts.alias_bomb:
            cases.append((f"alias bomb ({len(ALIAS_BOMB)} bytes, 8 levels x 10)", ALIAS_BOMB, {"z": 1}))
        for label, text, sets in cases:
            values.write_text(text)
            args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(extra, path=str(values), set=sets)}))
            wall, rss, stdout, ended = run_measured([sys.executable, str(module), str(args_file)], env, opts.timeout, opts.memory_limit)
            print(f"{label}: {wall:.1f} s, peak RSS {rss} MiB, {outcome(stdout, ended)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--large", help="comma-separated sizes in MB: run the module on files that large (and nothing else)")
    parser.add_argument("--alias-bomb", action="store_true", help="run the module on the 8x10 alias bomb (and nothing else)")
    parser.add_argument(
        "--collection",
        default=str(REPO / ".collections" / "ansible_collections" / "okemesh" / "istio"),
        help="the collection (at .../ansible_collections/okemesh/istio) whose module runs (--large/--alias-bomb)",
    )
    parser.add_argument("--module-arg", action="append", default=[], help="KEY=VALUE module option for --large/--alias-bomb")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a --large/--alias-bomb run is killed")
    parser.add_argument("--memory-limit", type=int, default=4096, help="MiB of address space a --large/--alias-bomb run may use")
    opts = parser.parse_args()
    if opts.large or opts.alias_bomb:
        print("load average at start: %.2f %.2f %.2f (this machine has %d cores)" % (*os.getloadavg(), os.cpu_count()))
        hostile(opts)
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
        return

    print("load average at start: %.2f %.2f %.2f (this machine has %d cores)" % (*os.getloadavg(), os.cpu_count()))
    text = build_file(opts.copies)
    sets, unsets = edits(opts.copies)
    n_paths = len(sets) + len(unsets)
    print(f"file: {len(text.splitlines())} lines, {len(text)} bytes; {n_paths} paths ({len(sets)} set, {len(unsets)} unset)")

    result = edit_values(text, sets=normalize_set(sets), unsets=normalize_unset(unsets))
    yaml = YAML()
    dumped = io.StringIO()
    yaml.dump(yaml.load(text), dumped)
    print(
        f"rendering: {result.rendering}; changes reported: {len(result.changes)}; "
        f"lines changed by the module: {changed_line_count(text, result.text)}; "
        f"lines a plain ruamel.yaml load+dump changes (no edit at all): {changed_line_count(text, dumped.getvalue())}"
    )

    pure = median_time(lambda: edit_values(text, sets=normalize_set(sets), unsets=normalize_unset(unsets)), opts.repeat)
    again = median_time(lambda: edit_values(result.text, sets=normalize_set(sets), unsets=normalize_unset(unsets)), opts.repeat)
    print(f"edit_values in-process: {pure * 1000:.0f} ms (change), {again * 1000:.0f} ms (already applied, no change)")

    with tempfile.TemporaryDirectory(prefix="bench-helm-values-service-") as tmp:
        target = Path(tmp) / "values.yaml"

        def service_edit():
            target.write_text(text)
            edit_values_file(path=str(target), set_values=sets, unset=unsets)

        served = median_time(service_edit, opts.repeat)
    print(f"edit_values_file in-process (lock, read, edit, change check, atomic write): {served * 1000:.0f} ms")

    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    with tempfile.TemporaryDirectory(prefix="bench-helm-values-") as tmp:
        work = Path(tmp)
        values = work / "values.yaml"

        # -- the module as a process (what AnsiballZ runs on the target, minus the zip wrapper)
        args_file = work / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"path": str(values), "set": sets, "unset": unsets}}))
        mod_env = dict(env, PYTHONPATH=str(REPO / ".collections"))

        def run_module():
            values.write_text(text)
            proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], env=mod_env, capture_output=True, text=True, check=False)
            out = json.loads(proc.stdout)
            if out.get("failed") or not out.get("changed"):
                raise SystemExit(f"module run failed: {proc.stdout} {proc.stderr}")

        print(f"module process (python helm_values.py args.json): {median_time(run_module, opts.repeat) * 1000:.0f} ms")

        # -- ansible-playbook, task durations from the ansible.posix.json callback
        playbook = work / "bench.yml"
        vars_file = work / "vars.json"
        original = work / "original.yaml"
        original.write_text(text)
        vars_file.write_text(json.dumps({"bench_path": str(values), "bench_original": str(original), "bench_set": sets, "bench_unset": unsets}))
        playbook.write_text(
            "- name: Benchmark helm_values\n"
            "  hosts: localhost\n"
            "  connection: local\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: Edit 20 paths (first use of the module in the play)\n"
            "      okemesh.istio.helm_values:\n"
            "        path: '{{ bench_path }}'\n"
            "        set: '{{ bench_set }}'\n"
            "        unset: '{{ bench_unset }}'\n"
            "    - name: Same edit again (idempotent)\n"
            "      okemesh.istio.helm_values:\n"
            "        path: '{{ bench_path }}'\n"
            "        set: '{{ bench_set }}'\n"
            "        unset: '{{ bench_unset }}'\n"
            "    - name: Restore the original file\n"
            "      ansible.builtin.copy:\n"
            "        src: '{{ bench_original }}'\n"
            "        dest: '{{ bench_path }}'\n"
            "        mode: '0644'\n"
            "    - name: Edit 20 paths (warm)\n"
            "      okemesh.istio.helm_values:\n"
            "        path: '{{ bench_path }}'\n"
            "        set: '{{ bench_set }}'\n"
            "        unset: '{{ bench_unset }}'\n"
            "    - name: Baseline task (stat of the same file)\n"
            "      ansible.builtin.stat:\n"
            "        path: '{{ bench_path }}'\n"
        )
        pb_env = dict(
            env,
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_LOCALHOST_WARNING="false",
        )
        task_times: dict[str, list[float]] = {}
        walls = []
        for _run in range(opts.repeat):
            values.write_text(text)
            start = time.perf_counter()
            proc = subprocess.run(
                [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{vars_file}", str(playbook)],
                env=pb_env,
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            report = json.loads(proc.stdout)
            for task in report["plays"][0]["tasks"]:
                host = task["hosts"]["localhost"]
                if host.get("failed"):
                    raise SystemExit(f"task failed: {host}")
                duration = task["task"]["duration"]
                seconds = _span(duration["start"], duration["end"])
                task_times.setdefault(task["task"]["name"], []).append(seconds)
            changed = [t["hosts"]["localhost"]["changed"] for t in report["plays"][0]["tasks"]]
            if changed != [True, False, True, True, False]:
                raise SystemExit(f"unexpected changed flags {changed}")
        for name, times in task_times.items():
            print(f"ansible-playbook task '{name}': {statistics.median(times) * 1000:.0f} ms")
        print(f"ansible-playbook wall time (5 tasks, start-up included): {statistics.median(walls):.2f} s")
        print(f"edited file check: {changed_line_count(text, values.read_text())} lines changed")
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())


def _span(start: str, end: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


if __name__ == "__main__":
    main()
