# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``POST /reconciliation`` (SPEC §7): the app's actual amounts of one period.

Same keys and JSON conventions as ``POST /usage`` (its helpers are reused):
authenticate the bearer key first, parse with ``core.reconciliation``, then hand
the request to ``fusion.billing.reconciliation._receive_api_request`` with rights
scoped to the authenticated service.
"""

from odoo import http

from ..core import reconciliation
from .usage import api_route, service_call


class FusionBillingReconciliationController(http.Controller):
    @api_route("/reconciliation", readonly=False)
    def post_reconciliation(self, **_params):
        return service_call(reconciliation.parse_api_request, self._receive_amounts)

    def _receive_amounts(self, service, parsed):
        results = service.env["fusion.billing.reconciliation"]._receive_api_request(
            service, parsed
        )
        return reconciliation.build_response(parsed.period, results)
