# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options; mirrors K8S_AUTH_ARGSPEC in plugins/module_utils/_k8s.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, several paths joined with V(:), or the kubeconfig content as a dictionary.
      - Defaults to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config); without any of them
        and without O(host) the in-cluster service account is used.
      - A path is shown as it is in messages and results. Of a dictionary, only the credentials inside are masked
        in the output (users' tokens, passwords and client keys, auth-provider secrets, exec plugin environment
        values and credential arguments, a password in a proxy URL), not the rest of it.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Defaults to E(K8S_AUTH_CONTEXT), then the kubeconfig's current context.
    type: str
  host:
    description:
      - URL of the Kubernetes API server (V(https://host:port)), overriding the kubeconfig's. Defaults to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for the API server, overriding the kubeconfig's. Defaults to E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to E(K8S_AUTH_VERIFY_SSL), then the kubeconfig.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate bundle for the API server. Defaults to E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for TLS client authentication. Defaults to E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert). Defaults to E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
requirements:
  - kubernetes (Python library) >= 24.2.0
notes:
  - The option names and environment variables are those of the kubernetes.core collection, so
    C(module_defaults) and inventory variables written for kubernetes.core work here too.
"""
