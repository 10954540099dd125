# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that give the roles the collection's shared data (module_utils/_support.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.okemesh.istio.plugins.module_utils._support import (
    SUPPORT,
    failed_definitions,
    is_helm_busy,
    is_transient,
    kubernetes_range,
)

display = Display()

# The release in which the deprecated variable names stop working (also written, as a literal,
# in the deprecated() call below: ansible-test checks it there).
REMOVAL_VERSION = "0.3.0"


def support(name):
    """A piece of the shared data by name (see okemesh.istio.support's documentation)."""
    if name not in SUPPORT:
        raise AnsibleFilterError(
            "okemesh.istio.support: unknown name %r; known: %s" % (name, ", ".join(sorted(SUPPORT)))
        )
    value = SUPPORT[name]
    if isinstance(value, dict):
        return dict((k, dict(v) if isinstance(v, dict) else v) for k, v in value.items())
    if isinstance(value, list):
        return list(value)
    return value


def kubernetes_supported(istio_version):
    """The Kubernetes range {min, max} an Istio version supports; {} when not recorded."""
    return kubernetes_range(istio_version)


def api_transient(result):
    """True when a registered result holds an API error a retry can cure (429, 5xx, connection)."""
    return is_transient(result)


def helm_busy(result):
    """True when a helm result failed because the release has an operation pending (pending-*)."""
    return is_helm_busy(result)


def api_failed_definitions(result, definitions):
    """The definitions a kubernetes.core.k8s task with continue_on_error could not apply, in order."""
    return failed_definitions(result, definitions)


def deprecated_names(renames, defined):
    """Emit a deprecation warning for each old variable name in ``defined``; return 'old -> new' lines.

    ``renames`` maps old names to new ones; ``defined`` lists the variable names that are set
    (for example ``query('ansible.builtin.varnames', '^(old1|old2)$')``).
    """
    if not isinstance(renames, dict):
        raise AnsibleFilterError("okemesh.istio.deprecated_names: the input must be a mapping of old to new names")
    lines = []
    for old in sorted(set(defined or []) & set(renames)):
        display.deprecated(
            "The variable %s is deprecated; set %s instead (the old name still works until then)." % (old, renames[old]),
            version="0.3.0",
            collection_name="okemesh.istio",
        )
        lines.append("%s -> %s" % (old, renames[old]))
    return lines


class FilterModule(object):
    """okemesh.istio filters."""

    def filters(self):
        return {
            "support": support,
            "kubernetes_supported": kubernetes_supported,
            "api_transient": api_transient,
            "api_failed_definitions": api_failed_definitions,
            "helm_busy": helm_busy,
            "deprecated_names": deprecated_names,
        }
