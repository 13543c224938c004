# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The API-key rule lives in a noupdate block, so an upgrade keeps the rule of
1.0.0, which let a billing manager of any company see and revoke every service's
keys. Rewrite it, unless an administrator has changed it since."""

from odoo import SUPERUSER_ID, api

RULE = "fusion_billing.fusion_billing_service_api_keys_rule"
DOMAIN_1_0_0 = (
    "[('scope', '=', 'fusion_billing'), "
    "('user_id.fusion_billing_service_ids', '!=', False)]"
)
DOMAIN = (
    "[('scope', '=', 'fusion_billing'), "
    "('user_id.fusion_billing_service_ids.company_id', 'in', company_ids)]"
)


def migrate(cr, version):
    rule = api.Environment(cr, SUPERUSER_ID, {}).ref(RULE, raise_if_not_found=False)
    if rule and rule.domain_force == DOMAIN_1_0_0:
        rule.domain_force = DOMAIN
