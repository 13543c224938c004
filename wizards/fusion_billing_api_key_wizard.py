# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


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
        key = self.service_id.generate_api_key(self.name, self.expiration_date)
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
