# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..core import periods

STATES = [("draft", "Draft"), ("active", "Active"), ("closed", "Closed")]


class FusionBillingSubscription(models.Model):
    _name = "fusion.billing.subscription"
    _description = "Usage Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "service_id, external_ref"
    _rec_name = "external_ref"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service",
        required=True,
        index=True,
        ondelete="restrict",
        tracking=True,
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        index=True,
        ondelete="restrict",
        check_company=True,
        tracking=True,
    )
    plan_id = fields.Many2one(
        "fusion.billing.plan",
        required=True,
        ondelete="restrict",
        domain="[('service_id', '=', service_id)]",
        tracking=True,
    )
    currency_id = fields.Many2one(related="plan_id.currency_id", store=True)
    external_ref = fields.Char(
        string="External Reference",
        required=True,
        tracking=True,
        help="The subscription's id in the app, as sent in usage events.",
    )
    state = fields.Selection(
        STATES, required=True, default="draft", tracking=True, copy=False
    )
    start_date = fields.Date(
        required=True, default=fields.Date.context_today, tracking=True
    )
    last_invoice_date = fields.Date(
        copy=False,
        tracking=True,
        help="Start of the open billing period once a period has been closed.",
    )
    next_invoice_date = fields.Date(
        copy=False,
        tracking=True,
        help="End (exclusive) of the open billing period: when it passes, the period "
        "is rated a last time and closed.",
    )
    invoice_ids = fields.One2many(
        "account.move", "fusion_subscription_id", string="Invoices", readonly=True
    )
    invoice_count = fields.Integer(compute="_compute_invoice_count")

    _external_ref_unique = models.Constraint(
        "UNIQUE(service_id, external_ref)",
        "A subscription with this external reference already exists for the service.",
    )
    _period_order = models.Constraint(
        "CHECK(next_invoice_date IS NULL OR "
        "next_invoice_date > COALESCE(last_invoice_date, start_date))",
        "The next invoice date must be after the start of the open period.",
    )

    def _compute_invoice_count(self):
        counts = dict(
            self.env["account.move"]._read_group(
                [("fusion_subscription_id", "in", self.ids)],
                ["fusion_subscription_id"],
                ["__count"],
            )
        )
        for subscription in self:
            subscription.invoice_count = counts.get(subscription, 0)

    @api.constrains("plan_id", "service_id")
    def _check_plan_service(self):
        for subscription in self:
            if subscription.plan_id.service_id != subscription.service_id:
                raise ValidationError(
                    _(
                        "Plan %(plan)s is not a plan of service %(service)s.",
                        plan=subscription.plan_id.display_name,
                        service=subscription.service_id.display_name,
                    )
                )

    @api.onchange("service_id")
    def _onchange_service_id(self):
        if self.plan_id.service_id != self.service_id:
            self.plan_id = False

    def _period_start(self):
        self.ensure_one()
        return self.last_invoice_date or self.start_date

    def _first_period_end(self):
        self.ensure_one()
        plan = self.plan_id
        return periods.next_boundary(
            self.start_date,
            plan.interval_unit,
            plan.interval_count,
            self._period_start(),
        )

    def action_activate(self):
        for subscription in self:
            if subscription.state != "draft":
                raise UserError(_("Only draft subscriptions can be activated."))
            subscription.write(
                {
                    "state": "active",
                    "next_invoice_date": subscription.next_invoice_date
                    or subscription._first_period_end(),
                }
            )
        return True

    def action_close(self):
        self.write({"state": "closed"})
        return True

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type"
        )
        action["domain"] = [("fusion_subscription_id", "=", self.id)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action
