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
  - The file is replaced atomically (temporary file in the same directory, then rename); a symlinked O(path) is edited
    where it points to and stays a link.
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
    an index out of range, a failed O(validate)) name the path and leave the file byte-for-byte unchanged.
  - Edits through YAML anchors/aliases are refused rather than silently changing every alias.
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

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, OkemeshError, ValuesFileError
from ansible_collections.okemesh.istio.plugins.module_utils._values import (
    HAS_RUAMEL,
    RUAMEL_IMPORT_ERROR,
    edit_values,
    normalize_set,
    normalize_unset,
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True, aliases=["dest"]),
    set=dict(type="raw"),
    unset=dict(type="list", elements="raw", default=[]),
    create=dict(type="bool", default=True),
    document=dict(type="int"),
    backup=dict(type="bool", default=False),
    validate=dict(type="str"),
)


def _read(path, create):
    if os.path.isdir(path):
        raise ValuesFileError("%s is a directory, not a values file." % path, path=path)
    if not os.path.exists(path):
        if not create:
            raise ValuesFileError("Values file %s does not exist (set create=true to create it)." % path, path=path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ValuesFileError("Cannot create %s: directory %s does not exist." % (path, parent), path=path)
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise ValuesFileError("Cannot read %s: %s" % (path, to_native(exc)), path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValuesFileError("%s is not a UTF-8 text file (%s), so it is not a values file." % (path, to_native(exc)), path=path)


def _write(module, path, new_text, existed):
    """Validate and atomically replace ``path``; returns the backup file name (or None)."""
    params = module.params
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except (IOError, OSError) as exc:
        raise ValuesFileError("Cannot write a temporary file in %s: %s" % (directory, to_native(exc)), path=path)
    precreated = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(new_text, errors="surrogate_or_strict"))
        if params["validate"]:
            if "%s" not in params["validate"]:
                raise InputError("validate must contain %%s (the temporary file); got %r." % params["validate"], path=path)
            rc, out, err = module.run_command(params["validate"].replace("%s", tmp))
            if rc != 0:
                raise ValuesFileError(
                    "validate command failed (rc=%d) for the new %s; the file was not changed." % (rc, path),
                    path=path,
                    rc=rc,
                    stdout=out,
                    stderr=err,
                    cmd=params["validate"].replace("%s", tmp),
                )
        backup_file = None
        if existed and params["backup"]:
            backup_file = module.backup_local(path)
        if not existed and params["mode"] is not None:
            # create the destination private first, so it is never readable by others before the mode is applied
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            precreated = True
        try:
            module.atomic_move(tmp, path, unsafe_writes=params["unsafe_writes"])
        except Exception as exc:  # atomic_move raises plain Exception
            raise ValuesFileError("Cannot replace %s: %s" % (path, to_native(exc)), path=path)
        precreated = False
        return backup_file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if precreated and os.path.exists(path) and os.path.getsize(path) == 0:
            os.unlink(path)


def run(module):
    params = module.params
    path = params["path"]
    sets = normalize_set(params["set"])
    unsets = normalize_unset(params["unset"])
    original = _read(path, params["create"])
    existed = original is not None
    result = edit_values(
        original,
        sets=sets,
        unsets=unsets,
        create=params["create"],
        document=params["document"],
        source=path,
    )
    changed = (not existed) or result.text != original
    output = dict(changed=changed, path=path, changes=result.changes, rendering=result.rendering)
    if module._diff:
        output["diff"] = dict(
            before=original or "",
            after=result.text,
            before_header=path if existed else "%s (absent)" % path,
            after_header=path,
        )
    if changed and not module.check_mode:
        # a symlinked values file is edited where it points to (the link stays a link)
        backup_file = _write(module, os.path.realpath(path) if existed else path, result.text, existed)
        if backup_file:
            output["backup_file"] = backup_file
    if existed or not module.check_mode:
        file_args = module.load_file_common_arguments(params, path=path)
        output["changed"] = module.set_fs_attributes_if_different(file_args, output["changed"])
    return output


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, add_file_common_args=True)
    if not HAS_RUAMEL:
        module.fail_json(msg=missing_required_lib("ruamel.yaml"), exception=to_native(RUAMEL_IMPORT_ERROR))
    try:
        output = run(module)
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**output)


if __name__ == "__main__":
    main()
