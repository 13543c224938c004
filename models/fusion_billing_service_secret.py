# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class FusionBillingServiceSecret(models.Model):
    """The webhook URL and secrets of a service, in a row of their own.

    Kept off the service's row because PostgreSQL quotes a whole row in the
    error of a constraint it breaks ("Failing row contains ..."), and Odoo and
    PostgreSQL log that error: a manager typing a negative grace period would
    write the secrets, and the token a URL's query string may carry, into both
    logs. Nothing here can break a constraint, and no group has access: the
    service's fields read and write it, for managers.
    """

    _name = "fusion.billing.service.secret"
    _description = "Webhook URL and Secrets of a Billed Service"

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    webhook_url = fields.Char()
    webhook_secret = fields.Char()
    webhook_previous_secret = fields.Char()

    _service_unique = models.Constraint(
        "UNIQUE(service_id)", "A service has one webhook URL and one set of secrets."
    )
