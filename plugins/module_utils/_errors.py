# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception tree for the collection; each exception carries its fail payload.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class OkemeshError(Exception):
    """Base error. ``msg`` says what the user must fix; ``details`` go into fail_json."""

    def __init__(self, msg, **details):
        super(OkemeshError, self).__init__(msg)
        self.msg = msg
        self.details = details

    def fail_kwargs(self):
        """Keyword arguments for ``module.fail_json(**err.fail_kwargs())``."""
        payload = dict((k, v) for k, v in self.details.items() if v is not None)
        payload["msg"] = self.msg
        return payload


class InputError(OkemeshError):
    """Bad option values or a bad input file; nothing was changed."""


class KubernetesError(OkemeshError):
    """The Kubernetes API refused or could not be reached (details: status, reason, api_error)."""


class OCIError(OkemeshError):
    """The OCI API refused or could not be reached (details: status, code, opc_request_id)."""


class ValuesFileError(OkemeshError):
    """A Helm values file could not be read, edited or written; the file is unchanged."""


class AddonError(OkemeshError):
    """An add-on (Prometheus, Grafana, Jaeger, Kiali) could not be reached or answered badly.

    details: addon, kind (not_found | forbidden | unavailable | unreachable | http_error | bad_answer |
    query_error), status, target (where it was asked, never a token).
    """


class GraphError(OkemeshError):
    """The service graph could not be built or written; no file was changed."""
