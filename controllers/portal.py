# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Customer portal: ``/my/usage`` and ``/my/usage/<id>`` (SPEC §12).

Access is Odoo's own: the record rules scope subscriptions to the user's
commercial partner, ``_document_check_access`` guards the detail page, and
only then is the subscription read with elevated rights to price it.
"""

from odoo import fields, http
from odoo.exceptions import AccessError, MissingError
from odoo.http import request

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

from ..core import charts

CHART_DAYS = 30
PORTAL_STATES = ("active", "closed")


class FusionBillingPortal(CustomerPortal):
    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "fusion_usage_count" in counters:
            Subscription = request.env["fusion.billing.subscription"]
            values["fusion_usage_count"] = (
                Subscription.search_count(self._usage_domain())
                if Subscription.has_access("read")
                else 0
            )
        return values

    def _usage_domain(self):
        # Billing users may read every subscription: the portal still shows
        # each user the subscriptions of their own company only.
        return [
            (
                "partner_id.commercial_partner_id",
                "=",
                request.env.user.commercial_partner_id.id,
            ),
            ("state", "in", PORTAL_STATES),
        ]

    @http.route(
        ["/my/usage", "/my/usage/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
        readonly=True,
    )
    def portal_my_usage(self, page=1, **_kw):
        Subscription = request.env["fusion.billing.subscription"]
        domain = self._usage_domain()
        can_read = Subscription.has_access("read")
        total = Subscription.search_count(domain) if can_read else 0
        pager = portal_pager(
            url="/my/usage", total=total, page=page, step=self._items_per_page
        )
        subscriptions = (
            Subscription.search(
                domain, limit=self._items_per_page, offset=pager["offset"]
            )
            if can_read
            else Subscription
        )
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "fusion_usage",
                "pager": pager,
                "subscriptions": subscriptions,
                "usage": subscriptions.sudo()._portal_usage(),
            }
        )
        return request.render("fusion_billing.portal_my_usage", values)

    @http.route(
        ["/my/usage/<int:subscription_id>"],
        type="http",
        auth="user",
        website=True,
        readonly=True,
    )
    def portal_my_usage_detail(self, subscription_id, **_kw):
        try:
            subscription_sudo = self._document_check_access(
                "fusion.billing.subscription", subscription_id
            )
        except (AccessError, MissingError):
            raise request.not_found() from None
        if subscription_sudo.state not in PORTAL_STATES:
            raise request.not_found()
        days = charts.last_days(fields.Date.today(), CHART_DAYS)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "fusion_usage",
                "subscription": subscription_sudo,
                "usage": subscription_sudo._portal_usage(days)[subscription_sudo.id],
                "invoices": subscription_sudo.invoice_ids.filtered(
                    lambda move: move.state == "posted"
                ).sorted("invoice_date", reverse=True),
            }
        )
        return request.render("fusion_billing.portal_my_usage_page", values)
