# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from collections import defaultdict

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
        # Two grouped queries for all the customers read (a list of them costs
        # what one does), counted as _subscription_domain / _invoice_domain
        # count them one customer at a time.
        customers = self.filtered(lambda customer: isinstance(customer.id, int))
        services = customers.service_id
        commercial_partners = customers.partner_id.commercial_partner_id
        subscriptions = defaultdict(int)
        for service, subscribed, count in self.env[
            "fusion.billing.subscription"
        ]._read_group(
            [
                ("service_id", "in", services.ids),
                ("partner_id", "child_of", commercial_partners.ids),
            ],
            ["service_id", "partner_id"],
            ["__count"],
        ):
            # child_of as the ORM resolves it (as superuser, archived partners
            # included): the subscription counts for the customer whose
            # commercial partner is its partner or one of its ancestors.
            ancestor = subscribed.sudo()
            while ancestor:
                subscriptions[service.id, ancestor.id] += count
                ancestor = ancestor.parent_id
        invoices = {
            (service.id, partner.id): count
            for service, partner, count in self.env["account.move"]._read_group(
                [
                    ("fusion_service_id", "in", services.ids),
                    ("commercial_partner_id", "in", commercial_partners.ids),
                    ("move_type", "in", RECONCILED_MOVE_TYPES),
                ],
                ["fusion_service_id", "commercial_partner_id"],
                ["__count"],
            )
        }
        for customer in self:
            key = (
                customer.service_id.id,
                customer.partner_id.commercial_partner_id.id,
            )
            counted = customer in customers
            customer.subscription_count = subscriptions[key] if counted else 0
            customer.invoice_count = invoices.get(key, 0) if counted else 0

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
