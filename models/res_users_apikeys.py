# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from .fusion_billing_service import API_KEY_SCOPE


class ResUsersApikeys(models.Model):
    _inherit = "res.users.apikeys"

    fusion_last_used = fields.Datetime(
        string="Last Used",
        readonly=True,
        help="When an app last called the usage API with this key (recorded at "
        "most once an hour).",
    )

    def init(self):
        # Odoo creates this table by hand (_auto = False): so is the column.
        result = super().init()
        self.env.cr.execute(
            SQL(
                "ALTER TABLE %s ADD COLUMN IF NOT EXISTS fusion_last_used timestamp",
                SQL.identifier(self._table),
            )
        )
        return result

    def action_fusion_billing_revoke(self):
        """Revoke service API keys from the service form: billing managers who may
        configure the service (its company) revoke its keys, nobody else's."""
        # The record rule lets billing managers see keys of their companies'
        # services only.
        self.check_access("read")
        keys = self.sudo()
        services = (
            self.env["fusion.billing.service"]
            .with_context(active_test=False)
            .search([("user_id", "in", keys.user_id.ids)])
        )
        if any(key.scope != API_KEY_SCOPE for key in keys) or (
            keys.user_id - services.user_id
        ):
            raise AccessError(
                self.env._("Only keys of a billed service can be revoked here.")
            )
        services.check_access("write")
        for key in keys:
            services.filtered(lambda s, k=key: s.user_id == k.user_id).message_post(
                body=self.env._("API key “%(name)s” revoked.", name=key.name),
                subtype_xmlid="mail.mt_note",
            )
        keys._remove()
        return True
