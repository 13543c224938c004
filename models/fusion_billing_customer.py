# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models

from .account_move import RECONCILED_MOVE_TYPES


class FusionBillingCustomer(models.Model):
    _name = "fusion.billing.customer"
    _description = "Customer of a Billed Service"
    _order = "service_id, external_ref"
    _rec_name = "external_ref"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner",
        required=True,
        index=True,
        ondelete="restrict",
        check_company=True,
    )
    external_ref = fields.Char(
        string="External Reference",
        required=True,
        help="The customer's id in the app, as the app sends it in usage events.",
    )

    subscription_count = fields.Integer(compute="_compute_counts")
    invoice_count = fields.Integer(compute="_compute_counts")

    _external_ref_unique = models.Constraint(
        "UNIQUE(service_id, external_ref)",
        "This external reference is already linked to a customer of the service.",
    )

    @api.depends("partner_id.name", "external_ref")
    def _compute_display_name(self):
        for customer in self:
            customer.display_name = (
                f"{customer.partner_id.name} ({customer.external_ref})"
                if customer.partner_id
                else customer.external_ref
            )

    def _subscription_domain(self):
        self.ensure_one()
        return [
            ("service_id", "=", self.service_id.id),
            ("partner_id", "child_of", self.partner_id.commercial_partner_id.id),
        ]

    def _invoice_domain(self):
        self.ensure_one()
        return [
            ("fusion_service_id", "=", self.service_id.id),
            ("commercial_partner_id", "=", self.partner_id.commercial_partner_id.id),
            ("move_type", "in", RECONCILED_MOVE_TYPES),
        ]

    def _compute_counts(self):
        for customer in self:
            if not isinstance(customer.id, int):
                customer.subscription_count = customer.invoice_count = 0
                continue
            customer.subscription_count = self.env[
                "fusion.billing.subscription"
            ].search_count(customer._subscription_domain())
            customer.invoice_count = self.env["account.move"].search_count(
                customer._invoice_domain()
            )

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "fusion_billing.fusion_billing_subscription_action"
        )
        action.update(
            domain=self._subscription_domain(),
            context={
                "default_service_id": self.service_id.id,
                "default_partner_id": self.partner_id.id,
            },
        )
        return action

    def action_view_usage(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "fusion_billing.fusion_billing_usage_event_action"
        )
        action["domain"] = [
            ("service_id", "=", self.service_id.id),
            (
                "subscription_id.partner_id",
                "child_of",
                self.partner_id.commercial_partner_id.id,
            ),
        ]
        return action

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "fusion_billing.fusion_billing_invoice_action"
        )
        action["domain"] = self._invoice_domain()
        return action
