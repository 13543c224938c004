# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    fusion_billing_subscription_count = fields.Integer(
        string="Usage Subscriptions",
        compute="_compute_fusion_billing_subscription_count",
        groups="fusion_billing.group_fusion_billing_user",
    )

    def _compute_fusion_billing_subscription_count(self):
        counts = dict(
            self.env["fusion.billing.subscription"]._read_group(
                [
                    (
                        "partner_id.commercial_partner_id",
                        "in",
                        self.commercial_partner_id.ids,
                    )
                ],
                ["partner_id"],
                ["__count"],
            )
        )
        for partner in self:
            partner.fusion_billing_subscription_count = sum(
                count
                for subscribed, count in counts.items()
                if subscribed.commercial_partner_id == partner.commercial_partner_id
            )

    def action_view_fusion_billing_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "fusion_billing.fusion_billing_subscription_action"
        )
        action.update(
            domain=[("partner_id", "child_of", self.commercial_partner_id.id)],
            context={"default_partner_id": self.id},
        )
        return action
