#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: oke_kubeconfig
short_description: Write a kubeconfig for an OKE cluster through the OCI Python SDK
version_added: 0.1.0
description:
  - Asks the OCI Container Engine API for the kubeconfig of an OKE cluster (what C(oci ce cluster create-kubeconfig) does)
    and merges it into, or replaces, a kubeconfig file.
  - The file is written atomically (a temporary file in the same directory, renamed over it). A new file gets mode C(0600).
    An existing file keeps its owner, its group and its owner permission bits (at least read); its group and other
    permission bits are removed, because a kubeconfig holds credentials. A run that cannot give the new file the old
    owner writes nothing and fails. If the file changes between the module's read and its write, nothing is written.
  - A merge keeps the comments, key order, quoting and list indentation of the existing file (a ruamel.yaml round trip).
  - A run with the same inputs that finds the same content reports no change and does not rewrite the file.
  - The user entry is either the standard exec plugin (C(oci ce cluster generate-token)), to which the module adds the
    C(--auth), C(--profile) and C(--config-file) arguments the chosen authentication needs (the CLI's own output omits
    them), or a bearer token minted by the module, so automation can reach the cluster without the C(oci) CLI.
  - "Trade-off of O(credential=token): the token is a signed request that OKE accepts for a few minutes only (C(token_expiration)
    in the result, about 4 minutes); use it for the tasks that follow right away, and O(credential=exec) for anything
    long-lived. A token is freshly minted on every run, so token mode reports a change on (practically) every run."
  - Check mode asks OCI for the kubeconfig (a read-only call) to predict the change, and writes nothing.
author:
  - okemesh.istio maintainers (@okemesh)
extends_documentation_fragment:
  - okemesh.istio.oci_auth
options:
  cluster_id:
    description:
      - OCID of the OKE cluster (C(ocid1.cluster....)). Checked for form before any call.
    type: str
    required: true
  endpoint:
    description:
      - Which API server endpoint of the cluster the kubeconfig targets.
    type: str
    choices: [PUBLIC_ENDPOINT, PRIVATE_ENDPOINT, VCN_HOSTNAME, LEGACY_KUBERNETES]
    default: PUBLIC_ENDPOINT
  dest:
    description:
      - Path of the kubeconfig file to write.
      - A symlink to a regular file is written through (the link stays a link). A dangling symlink, a symlink loop, a
        directory, a FIFO, a device or a socket is refused with an error, in check mode too; nothing is created or replaced.
      - With O(merge=true) the existing file must be a valid kubeconfig of at most 8 MiB (no more than 64 levels of flow
        nesting, YAML aliases expanding to no more than 200,000 nodes, unique entry names). Errors give the line and column,
        never the content. O(merge=false) replaces a file that is not.
    type: path
    default: ~/.kube/config
  context:
    description:
      - Name of the context to write. When set, the cluster and user entries get this name too, so kubeconfigs
        for several endpoints of one cluster can live in one file.
      - Default is OKE's names (C(context-<suffix>), C(cluster-<suffix>), C(user-<suffix>)).
      - At most 253 characters, not empty, without control characters or leading or trailing spaces.
    type: str
  merge:
    description:
      - V(true) merges into an existing O(dest) - entries with the same names are replaced, every other cluster, context,
        user and top-level setting is kept.
      - V(false) replaces the whole file with the kubeconfig of this cluster.
    type: bool
    default: true
  set_current_context:
    description:
      - Make the written context the current context.
    type: bool
    default: true
  credential:
    description:
      - V(exec) writes the exec plugin user (C(oci ce cluster generate-token)); kubectl then needs the C(oci) CLI.
      - V(token) writes a bearer token minted by the module; it expires within minutes (see the description).
    type: str
    choices: [exec, token]
    default: exec
  exec_auth_args:
    description:
      - Add C(--auth), C(--profile) and C(--config-file) to the exec command when the authentication used by this module
        needs them. V(false) keeps the exec command exactly as OKE returns it.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Predicts the change from the kubeconfig OCI returns; writes nothing.
  diff_mode:
    support: full
    description: Shows the kubeconfig before and after, with every credential masked (see the notes); comments are not shown.
  idempotent:
    description: When run twice in a row with the same options, the second run reports no change.
    support: partial
    details: Idempotent with O(credential=exec); O(credential=token) mints a new token, so it reports a change on later runs.
notes:
  - C(oci ce cluster create-kubeconfig) writes a new file with mode 0644; this module uses 0600.
  - The OCI request that returns the kubeconfig is a read; nothing changes in OCI.
  - "What the diff masks: not a list of key names but an allowlist by structure. In C(users), only entry names, C(username),
    impersonation names, certificate/key/token file paths, the exec C(command), C(apiVersion), C(installHint) and flags,
    C(env) names and the auth-provider C(name) are shown. Token, password, C(client-key-data), C(client-certificate-data),
    exec C(env) values, auth-provider C(config) values, extensions and any unknown key are masked."
  - "Exec C(args) are masked in every user entry except the one this module writes, and there every argument that is not
    one the module itself writes is masked: tools pass tokens as arguments (C(--token X), C(--password=X), positional
    values) and no list of flag names is complete. C(server) and C(proxy-url) lose their userinfo and query values. Any
    string shaped like a private key, a JWT or an Authorization header value is masked wherever it is. A secret that the
    run changes shows as C(********) followed by the word C(changed) in the after view."
  - Errors name the file, line and column or the option, never a value of the file; OCIDs are described, not echoed.
  - A file with several hard links is replaced under its name only (a warning says so); the other links keep the old content.
requirements:
  - ruamel.yaml (on the host that runs the module)
seealso:
  - name: Downloading a kubeconfig file to enable cluster access
    description: The OKE documentation of the same operation.
    link: https://docs.oracle.com/en-us/iaas/Content/ContEng/Tasks/contengdownloadkubeconfigfile.htm
"""

EXAMPLES = r"""
- name: Kubeconfig for the public endpoint, merged into ~/.kube/config
  okemesh.istio.oke_kubeconfig:
    cluster_id: ocid1.cluster.oc1.iad.aaaaaaaaexampleexampleexample
    region: us-ashburn-1

- name: Separate kubeconfig, private endpoint, profile "prod" of the OCI config
  okemesh.istio.oke_kubeconfig:
    cluster_id: "{{ oke_cluster_ocid }}"
    endpoint: PRIVATE_ENDPOINT
    config_profile_name: prod
    dest: "{{ playbook_dir }}/kubeconfig"
    context: prod-private
    merge: false
  register: kcfg

- name: From an OCI instance, with a token minted by the module (no oci CLI needed)
  okemesh.istio.oke_kubeconfig:
    cluster_id: "{{ oke_cluster_ocid }}"
    auth_type: instance_principal
    credential: token
    dest: /run/okemesh/kubeconfig
"""

RETURN = r"""
dest:
  description: Path of the kubeconfig file.
  returned: always
  type: str
  sample: /home/opc/.kube/config
context:
  description: Name of the context written for the cluster.
  returned: always
  type: str
  sample: context-c4tqmrsmy2d
current_context:
  description: The file's current context after the run (empty when none).
  returned: always
  type: str
cluster_name:
  description: Name of the cluster entry.
  returned: always
  type: str
user_name:
  description: Name of the user entry.
  returned: always
  type: str
server:
  description: API server URL of the chosen endpoint.
  returned: always
  type: str
  sample: https://203.0.113.10:6443
cluster_id:
  description: The cluster OCID.
  returned: always
  type: str
region:
  description: The OCI region that was asked.
  returned: always
  type: str
endpoint:
  description: The endpoint type.
  returned: always
  type: str
credential:
  description: C(exec) or C(token).
  returned: always
  type: str
auth_type:
  description: The OCI authentication used.
  returned: always
  type: str
exec_args:
  description: Arguments added to the exec command for the authentication used.
  returned: always
  type: list
  elements: str
  sample: [--profile, prod]
token_expiration:
  description: When the minted token stops being accepted (UTC, RFC 3339).
  returned: when O(credential=token)
  type: str
  sample: "2026-11-26T12:04:00Z"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.okemesh.istio.plugins.module_utils._errors import OkemeshError
from ansible_collections.okemesh.istio.plugins.module_utils._kubeconfig import HAS_RUAMEL, RUAMEL_IMPORT_ERROR
from ansible_collections.okemesh.istio.plugins.module_utils._oci import CREDENTIALS, ENDPOINTS, HAS_OCI, OCI_AUTH_ARG_SPEC, ensure_oke_kubeconfig


def argument_spec():
    spec = dict(
        cluster_id=dict(type="str", required=True),
        endpoint=dict(type="str", default="PUBLIC_ENDPOINT", choices=ENDPOINTS),
        dest=dict(type="path", default="~/.kube/config"),
        context=dict(type="str"),
        merge=dict(type="bool", default=True),
        set_current_context=dict(type="bool", default=True),
        credential=dict(type="str", default="exec", choices=CREDENTIALS),
        exec_auth_args=dict(type="bool", default=True),
    )
    spec.update(OCI_AUTH_ARG_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_OCI:
        module.fail_json(msg=missing_required_lib("oci"))
    if not HAS_RUAMEL:
        module.fail_json(msg=missing_required_lib("ruamel.yaml"), exception=str(RUAMEL_IMPORT_ERROR))
    try:
        result = ensure_oke_kubeconfig(module.params, check_mode=module.check_mode, want_diff=module._diff)
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
