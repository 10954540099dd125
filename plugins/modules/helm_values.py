#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: helm_values
short_description: Edit a Helm values file surgically, keeping comments, order, quoting and indentation
version_added: 0.1.0
description:
  - Sets and removes values in a Helm chart's C(values.yaml) (or any YAML mapping file) by dotted path, the way a careful
    person edits it by hand; every line that does not need to change stays byte-for-byte identical, including comments,
    key order, quote style, blank lines and the list indentation style of each list (upstream files mix styles).
  - The file is parsed with ruamel.yaml to locate each key and value; the new text is spliced in at that position. A changed
    scalar keeps its quote style where the new value allows it; a new key is added after the last key of its mapping with
    the indentation of its siblings; a new mapping or list is written in block style with the file's indentation. The result
    (the changed parts) is parsed again and must read back exactly as intended (type aware) before it is written.
  - Only when a change cannot be spliced (YAML anchors/aliases or merge keys on the edited path, complex keys, unusual layouts)
    the whole file is re-emitted by a ruamel.yaml round-trip dump; comments and key order survive, but indentation and list
    style are normalised, so lines other than the edited ones may change. RV(rendering) says which method was used.
  - Also writes override files - a O(path) that does not exist yet is created when O(create=true) - so a role can either edit
    the chart's values in place or keep upstream untouched and pass an override file to Helm.
  - Strings are written so that YAML 1.1 (Helm) and YAML 1.2 read them back as strings, so V("true"), V("1.0") and V("on") are
    quoted; V(true) (a boolean) and V("true") (a string) are different values and the module reports the type change.
  - The file is replaced atomically (temporary file in the same directory, given its final owner, group and mode, then
    renamed over the file); a symlinked O(path) is edited where it points to and stays a link. O(owner), O(group) and
    O(mode) are checked before anything is written.
  - Only a regular file, or a symlink to one, is edited. A directory, a device (C(/dev/null)), a FIFO, a socket, a dangling
    symlink or a symlink loop is refused before it is opened for reading and left as it is; nothing blocks on a FIFO.
  - Safe under concurrency. The module holds an exclusive lock (C(flock)) on the file for its whole read-modify-write, so
    parallel tasks editing one file (several hosts delegating to one file, C(-f 10)) queue and every edit lands. A writer
    that does not take the lock (an editor, C(sed -i)) is detected - the file is compared with what was read just before it
    is replaced - and the edit is redone on the new content (three tries) instead of overwriting the other change (only a
    write in the instant between that check and the rename escapes it).
  - Bounded. A file larger than O(max_file_size) and YAML aliases that expand beyond O(max_alias_nodes) nodes (an alias
    bomb) fail at once with a message saying which option to raise; nesting deeper than 200 levels is refused.
  - Error messages name the file, a line and a column; they never quote the file's content (a values file may hold
    passwords).
author:
  - okemesh.istio contributors (@okemesh)
requirements:
  - ruamel.yaml >= 0.17 (on the host that runs the module)
extends_documentation_fragment:
  - ansible.builtin.files
options:
  path:
    description:
      - The values file to edit (or to create, see O(create)).
    type: path
    required: true
    aliases: [dest]
  set:
    description:
      - Values to set. Either a mapping of dotted paths to values, or a list of items with the keys C(path) and C(value),
        where C(path) is a dotted path or a list of keys (strings) and list indexes (integers) that needs no escaping.
      - "Path syntax: keys separated by C(.); C([N]) indexes a list (C(gateways.ports[0].port); negative indexes count
        from the end); a key containing dots is quoted (C(podAnnotations.\"prometheus.io/scrape\")) or escaped with a
        backslash (C(podAnnotations.prometheus\\.io/scrape))."
      - A value may be a scalar, a mapping or a list; mappings and lists are written in block style (empty ones as C({})
        and C([])). Setting a path replaces the value there as a whole; set single keys to merge into a mapping.
      - An index must exist (an index out of range is an error); to add list items set the whole list - items appended at the
        end of an existing list are added as new lines below the existing ones.
      - Applied in order, after O(unset).
    type: raw
  unset:
    description:
      - Paths to remove (same syntax as O(set); an item may also be a list of keys). A path that is not there is not an error.
      - Removing a list item by index is not idempotent (the next item moves up); prefer setting the whole list.
    type: list
    elements: raw
    default: []
  create:
    description:
      - Create missing intermediate mappings (a C(null) value on the way counts as missing), and create O(path) when it does not
        exist (its directory must exist).
      - With V(false), a missing file or a missing intermediate key is an error.
    type: bool
    default: true
  document:
    description:
      - Index of the YAML document to edit when the file holds several (C(---) separated). Without it, a multi-document file
        is refused.
    type: int
  backup:
    description:
      - Keep a timestamped copy of the original file next to it when the module changes it.
    type: bool
    default: false
  validate:
    description:
      - Command run on the temporary file before it replaces O(path); C(%s) stands for the temporary file's path and is
        required. A non-zero exit fails the task and leaves O(path) unchanged.
      - "Example: C(helm lint /path/to/chart -f %s) or C(python3 -c 'import sys,yaml; yaml.safe_load(open(sys.argv[1]))' %s)."
    type: str
  max_file_size:
    description:
      - Largest file, in bytes, the module reads; a larger O(path) fails before it is read. Range 1 to 1073741824 (1 GiB).
      - The default (8 MiB) is far above any chart's values file (Helm keeps the values of a release in a Secret, limited to
        1 MiB compressed). Parsing costs about 1.5 s and 30 MiB of memory per MiB of YAML (measured on a 2-core machine).
    type: int
    default: 8388608
  max_alias_nodes:
    description:
      - How many nodes YAML aliases may add when they are expanded (an alias counts as the size of what it refers to, merge
        keys included). A file over the limit (an alias bomb such as the 299-byte "8 levels of 10") fails at once.
      - Range 0 (no alias may refer to a collection; aliases to single scalars count 1 each) to 100000000.
    type: int
    default: 100000
  lock_timeout:
    description:
      - Seconds to wait for the lock on O(path) held by another run of this module (or any program that C(flock)s the
        file). On timeout the task fails and the file is unchanged. Range 0 (do not wait) to 3600.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Predicts the changes (and the diff) without writing anything; O(validate) is not run.
  diff_mode:
    support: full
    description: Returns the file before and after as text (a unified diff in the output).
  idempotent:
    support: full
    description: When the values already match (type aware), nothing is written and C(changed=false). See O(unset) for indexes.
notes:
  - Errors (missing file with O(create=false), not YAML, a multi-document file without O(document), a path crossing a scalar,
    an index out of range, a failed O(validate), a bad O(owner), O(group) or O(mode), a file that is too large, a file that
    is not a regular file) name the path and leave the file byte-for-byte unchanged.
  - Edits through YAML anchors/aliases are refused rather than silently changing every alias.
  - Check mode reads the file without taking the lock.
  - The lock is advisory and held on the file itself; on a file system without C(flock) (some network file systems) the
    module relies on the change detection alone, which narrows the window for lost edits but does not close it.
  - Like any replace-by-rename, the edit gives O(path) a new inode; hard links to the old file keep the old content.
  - O(validate) runs as a plain command (no shell); its output is returned as it is, so choose a command that does not
    print the values.
seealso:
  - module: ansible.builtin.lineinfile
  - module: kubernetes.core.helm
"""

EXAMPLES = r"""
- name: Enable the classic add-ons in the chart's values.yaml (edit in place, comments kept)
  okemesh.istio.helm_values:
    path: "{{ istio_chart_dir }}/values.yaml"
    set:
      grafana.enabled: true
      prometheus.enabled: true
      servicegraph.enabled: true
      tracing.enabled: true
    backup: true

- name: Write an override file for helm (upstream values untouched)
  okemesh.istio.helm_values:
    path: "{{ work_dir }}/istiod-overrides.yaml"
    mode: "0600"
    set:
      global.hub: registry.example.com/istio
      global.tag: "1.27.1"
      pilot.resources: {requests: {cpu: 500m, memory: 2Gi}}
      meshConfig.defaultConfig.proxyMetadata: {}

- name: Keys that contain dots, list indexes, and removal
  okemesh.istio.helm_values:
    path: values.yaml
    set:
      - path: [gateways, istio-ingressgateway, podAnnotations, prometheus.io/scrape]
        value: "true"
      - path: gateways.istio-ingressgateway.ports[0].port
        value: 8080
      - path: 'pilot.podAnnotations."sidecar.istio.io/inject"'
        value: "false"
    unset:
      - kiali
      - global.proxy.resources.limits

- name: Edit and check the result with helm before it replaces the file
  okemesh.istio.helm_values:
    path: charts/istiod/values.yaml
    set:
      pilot.autoscaleEnabled: false
    validate: helm lint charts/istiod -f %s
"""

RETURN = r"""
path:
  description: The edited file.
  returned: always
  type: str
changes:
  description:
    - One item per requested path whose value changed (C(action) is C(create), C(update) or C(delete)), with the values
      before and after. When the type changes (V("true") vs V(true)), C(before_type) and C(after_type) say so.
  returned: always
  type: list
  elements: dict
  sample:
    - path: grafana.enabled
      action: update
      before: false
      after: true
rendering:
  description: How the new text was produced - C(splice) (only the edited lines changed), C(dump) (full round-trip dump)
    or C(none) (nothing to change).
  returned: always
  type: str
  sample: splice
backup_file:
  description: Path of the backup copy.
  returned: when O(backup=true) and the file changed
  type: str
diff:
  description: The file before and after (only with C(--diff)).
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.okemesh.istio.plugins.module_utils._errors import OkemeshError
from ansible_collections.okemesh.istio.plugins.module_utils._values import DEFAULT_MAX_ALIAS_NODES, HAS_RUAMEL, RUAMEL_IMPORT_ERROR
from ansible_collections.okemesh.istio.plugins.module_utils._values_file import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_FILE_SIZE,
    edit_values_file,
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True, aliases=["dest"]),
    set=dict(type="raw"),
    unset=dict(type="list", elements="raw", default=[]),
    create=dict(type="bool", default=True),
    document=dict(type="int"),
    backup=dict(type="bool", default=False),
    validate=dict(type="str"),
    max_file_size=dict(type="int", default=DEFAULT_MAX_FILE_SIZE),
    max_alias_nodes=dict(type="int", default=DEFAULT_MAX_ALIAS_NODES),
    lock_timeout=dict(type="int", default=DEFAULT_LOCK_TIMEOUT),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, add_file_common_args=True)
    if not HAS_RUAMEL:
        module.fail_json(msg=missing_required_lib("ruamel.yaml"), exception=to_native(RUAMEL_IMPORT_ERROR))
    params = module.params

    def keep_selinux_context(tmp, target):
        # what atomic_move does: the new file gets the SELinux context of the file it replaces
        if module.selinux_enabled():
            module.set_context_if_different(tmp, module.selinux_context(target), False)

    try:
        outcome = edit_values_file(
            path=params["path"],
            set_values=params["set"],
            unset=params["unset"],
            create=params["create"],
            document=params["document"],
            backup=params["backup"],
            validate=params["validate"],
            mode=params["mode"],
            owner=params["owner"],
            group=params["group"],
            unsafe_writes=params["unsafe_writes"],
            max_file_size=params["max_file_size"],
            max_alias_nodes=params["max_alias_nodes"],
            lock_timeout=params["lock_timeout"],
            check_mode=module.check_mode,
            want_diff=module._diff,
            prepare_temp=keep_selinux_context,
        )
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    result = outcome.result
    if outcome.real_path is not None:
        # owner, group and mode were applied (and checked) by the service before the file was replaced;
        # SELinux options and file attributes are Ansible's
        file_args = module.load_file_common_arguments(params, path=outcome.real_path)
        file_args.update(mode=None, owner=None, group=None)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
