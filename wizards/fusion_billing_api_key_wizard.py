# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models
from odoo.exceptions import UserError

from ..models.fusion_billing_service import API_KEY_SCOPE


class FusionBillingApiKeyWizard(models.TransientModel):
    _name = "fusion.billing.api.key.wizard"
    _description = "Generate a Service API Key"

    service_id = fields.Many2one("fusion.billing.service", required=True, readonly=True)
    name = fields.Char(
        string="Description",
        required=True,
        help="Where the key is used, e.g. 'NexaCloud production'.",
    )
    expiration_date = fields.Datetime(help="Leave empty for a key that never expires.")

    def action_generate(self):
        """Issue the key to the service's technical user and show it once, the way
        Odoo's own API key wizard does: only its hash is stored."""
        self.ensure_one()
        if self.expiration_date and self.expiration_date <= fields.Datetime.now():
            raise UserError(self.env._("The expiration date must be in the future."))
        service = self.service_id
        service._ensure_technical_user()
        key = (
            self.env["res.users.apikeys"]
            .with_user(service.user_id)
            .sudo()
            ._generate(API_KEY_SCOPE, self.name, self.expiration_date)
        )
        self.unlink()
        return {
            "type": "ir.actions.act_window",
            "res_model": "res.users.apikeys.show",
            "name": self.env._("API Key Ready"),
            "views": [
                (
                    self.env.ref(
                        "fusion_billing.fusion_billing_api_key_show_view_form"
                    ).id,
                    "form",
                )
            ],
            "target": "new",
            "context": {"default_key": key},
        }
