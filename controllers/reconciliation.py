# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``POST /reconciliation`` (SPEC §7): the app's actual amounts of one period.

Same keys and JSON conventions as ``POST /usage`` (its helpers are reused):
authenticate the bearer key first, parse with ``core.reconciliation``, then hand
the request to ``fusion.billing.reconciliation._receive_api_request`` with rights
scoped to the authenticated service.
"""

from odoo import http
from odoo.http import request

from ..core import reconciliation, usage
from .usage import json_reply, service_call


class FusionBillingReconciliationController(http.Controller):
    # methods=None: Odoo would answer other methods with its HTML 405 page.
    @http.route(
        "/reconciliation",
        type="http",
        auth="none",
        methods=None,
        csrf=False,
        save_session=False,
        # auth='none' routes default to a read-only cursor; this one writes.
        readonly=False,
    )
    def post_reconciliation(self, **_params):
        return service_call(self._receive_amounts)

    def _receive_amounts(self, service, body):
        parsed = reconciliation.parse_api_request(
            body, request.httprequest.headers.get("Content-Type")
        )
        if type(parsed) is usage.Reply:
            return json_reply(parsed)
        results = service.env["fusion.billing.reconciliation"]._receive_api_request(
            service, parsed
        )
        return json_reply(reconciliation.build_response(parsed.period, results))
