# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI authentication options; mirrors OCI_AUTH_ARG_SPEC in module_utils/_oci.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  auth_type:
    description:
      - How to authenticate to OCI.
      - V(api_key) signs with an API key from an OCI config file profile and/or the O(api_user) options.
      - V(instance_principal) uses the identity of the OCI compute instance the module runs on.
      - V(resource_principal) uses the resource principal of an OCI function or job (C(OCI_RESOURCE_PRINCIPAL_*) variables).
      - V(security_token) uses the session token of a profile created by C(oci session authenticate).
      - Falls back to the environment variable E(OCI_ANSIBLE_AUTH_TYPE).
    type: str
    choices: [api_key, instance_principal, resource_principal, security_token]
    default: api_key
  config_file_location:
    description:
      - Path of the OCI config file. Defaults to C(~/.oci/config).
      - Falls back to the environment variable E(OCI_CONFIG_FILE).
      - When this is set to something other than the default, the kubeconfig's exec command gets C(--config-file).
    type: path
  config_profile_name:
    description:
      - Profile of the OCI config file. Defaults to C(DEFAULT).
      - Falls back to the environment variable E(OCI_CONFIG_PROFILE).
      - A profile other than C(DEFAULT) is added to the kubeconfig's exec command as C(--profile).
    type: str
  region:
    description:
      - OCI region identifier, for example C(us-ashburn-1) (lower case letters, digits and dashes).
      - Defaults to the region of the config profile, then to the region named in the cluster OCID.
      - Falls back to the environment variable E(OCI_REGION).
    type: str
  tenancy:
    description:
      - OCID of the tenancy, overriding the profile's C(tenancy). Falls back to E(OCI_TENANCY).
      - OCIDs (here, in O(api_user) and in C(cluster_id)) are matched whole; a trailing newline or space fails the check,
        which runs before any call.
    type: str
  api_user:
    description:
      - OCID of the user, overriding the profile's C(user). Falls back to E(OCI_USER_ID).
    type: str
  api_user_fingerprint:
    description:
      - Fingerprint of the user's API key, overriding the profile's C(fingerprint). Falls back to E(OCI_USER_FINGERPRINT).
      - 16 pairs of hex digits separated by colons.
    type: str
  api_user_key_file:
    description:
      - Path of the PEM private key, overriding the profile's C(key_file). Falls back to E(OCI_USER_KEY_FILE).
    type: path
  api_user_key_pass_phrase:
    description:
      - Passphrase of an encrypted private key. Never logged. Falls back to E(OCI_USER_KEY_PASS_PHRASE).
    type: str
  service_endpoint:
    description:
      - Container Engine endpoint URL to use instead of the regional one (for example a private endpoint or a test stub).
      - Must be an C(https://) URL with a host, without user information, query or fragment. C(http://) is accepted only
        for a loopback address (C(localhost), C(127.0.0.0/8), C(::1)), because the signed requests would otherwise travel
        in clear text.
    type: str
  timeout:
    description:
      - Read timeout of each OCI request in seconds (the connect timeout is the smaller of this and 10).
      - Greater than 0 and at most 300. One run waits at most O(timeout) x (O(retries) + 1) + 8 x O(retries) seconds for OCI.
    type: float
    default: 30.0
  retries:
    description:
      - How many times a failed request is retried (connection errors, timeouts, 429 and 5xx answers), with backoff
        of at most 8 seconds between attempts.
      - From V(0) (no retries) to V(10).
    type: int
    default: 3
requirements:
  - oci (the OCI Python SDK)
"""
