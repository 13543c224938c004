# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``GET /usage/summary`` (SPEC §12): the open period's running bill.

Same key and JSON conventions as ``POST /usage``; the figures come from
``fusion.billing.subscription._usage_summary`` with rights scoped to the
authenticated service.
"""

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from ..core import summary, usage
from .usage import (
    api_route,
    authenticated_service,
    json_reply,
    method_not_allowed,
    unauthenticated,
)


class FusionBillingSummaryController(http.Controller):
    @api_route("/usage/summary", readonly=True)
    def usage_summary(self, **_params):
        if request.httprequest.method not in ("GET", "HEAD"):
            return method_not_allowed("GET", "HEAD")
        service = authenticated_service() if request.db else None
        if service is None:
            return unauthenticated("missing, unknown, revoked or expired API key")
        reference = summary.parse_subscription_param(
            request.httprequest.args.getlist(summary.SUBSCRIPTION_PARAM)
        )
        if type(reference) is usage.Reply:
            return json_reply(reference)
        request.update_env(user=service.env.uid)
        service = service.with_env(request.env(su=True))
        try:
            body = service.env["fusion.billing.subscription"]._usage_summary(
                service, reference
            )
        except UserError as error:
            return json_reply(summary.not_priceable(str(error)))
        if body is None:
            return json_reply(summary.unknown_subscription(reference))
        return json_reply(usage.Reply(200, body))
