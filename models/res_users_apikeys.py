# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import models
from odoo.exceptions import AccessError

from .fusion_billing_service import API_KEY_SCOPE


class ResUsersApikeys(models.Model):
    _inherit = "res.users.apikeys"

    def action_fusion_billing_revoke(self):
        """Revoke service API keys from the service form (billing managers)."""
        if not self.env.user.has_group("fusion_billing.group_fusion_billing_manager"):
            raise AccessError(
                self.env._("Only billing managers can revoke service API keys.")
            )
        services = (
            self.env["fusion.billing.service"]
            .sudo()
            .search([("user_id", "in", self.sudo().user_id.ids)])
        )
        keys = self.sudo()
        if any(key.scope != API_KEY_SCOPE for key in keys) or (
            keys.user_id - services.user_id
        ):
            raise AccessError(
                self.env._("Only keys of a billed service can be revoked here.")
            )
        keys._remove()
        return True
