# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The webhook URL, whose query string may carry a token, follows the secrets
off the service's row (see fusion.billing.service.secret): copy it to the
service's row there, then drop the old column, which PostgreSQL would go on
quoting in the errors it logs."""

from odoo.tools import SQL, sql


def migrate(cr, version):
    if not sql.column_exists(cr, "fusion_billing_service", "webhook_url"):
        return
    cr.execute(
        SQL(
            """
            INSERT INTO fusion_billing_service_secret
                   (service_id, webhook_url,
                    create_uid, create_date, write_uid, write_date)
            SELECT id, webhook_url,
                   1, now() AT TIME ZONE 'utc', 1, now() AT TIME ZONE 'utc'
              FROM fusion_billing_service
             WHERE webhook_url IS NOT NULL
            ON CONFLICT (service_id)
            DO UPDATE SET webhook_url = EXCLUDED.webhook_url
            """
        )
    )
    cr.execute("ALTER TABLE fusion_billing_service DROP COLUMN webhook_url")
