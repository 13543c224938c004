# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The webhook secrets move off the service's row (see
fusion.billing.service.secret): copy them to their own rows, then drop the
old columns, which Odoo keeps when a field stops being stored and which
would go on showing in the errors PostgreSQL logs."""

from odoo.tools import SQL, sql

COLUMNS = ("webhook_secret", "webhook_previous_secret")


def migrate(cr, version):
    if not sql.column_exists(cr, "fusion_billing_service", COLUMNS[0]):
        return
    cr.execute(
        SQL(
            """
            INSERT INTO fusion_billing_service_secret
                   (service_id, webhook_secret, webhook_previous_secret,
                    create_uid, create_date, write_uid, write_date)
            SELECT id, webhook_secret, webhook_previous_secret,
                   1, now() AT TIME ZONE 'utc', 1, now() AT TIME ZONE 'utc'
              FROM fusion_billing_service
             WHERE webhook_secret IS NOT NULL
                OR webhook_previous_secret IS NOT NULL
            ON CONFLICT (service_id) DO NOTHING
            """
        )
    )
    for column in COLUMNS:
        cr.execute(
            SQL(
                "ALTER TABLE fusion_billing_service DROP COLUMN IF EXISTS %s",
                SQL.identifier(column),
            )
        )
