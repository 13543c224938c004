# Copyright 2026 fusion_billing contributors
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Fusion Billing",
    "summary": "Usage-based billing hub for your own apps: metered usage, "
    "rating into draft invoices, signed webhooks, dual-run reconciliation",
    "version": "19.0.1.1.0",
    "category": "Accounting/Accounting",
    "website": "https://github.com/fusion-billing/fusion_billing",
    "author": "fusion_billing contributors",
    "maintainers": ["fusion-billing"],
    "license": "LGPL-3",
    "development_status": "Beta",
    "application": True,
    "depends": ["account", "mail", "portal"],
    "data": [
        "security/fusion_billing_groups.xml",
        "security/ir.model.access.csv",
        "security/fusion_billing_security.xml",
        "security/fusion_billing_visibility_security.xml",
        "data/ir_cron_data.xml",
        "views/fusion_billing_service_views.xml",
        "views/fusion_billing_customer_views.xml",
        "views/fusion_billing_metric_views.xml",
        "views/fusion_billing_plan_views.xml",
        "views/fusion_billing_charge_views.xml",
        "views/fusion_billing_charge_filter_views.xml",
        "views/fusion_billing_credit_views.xml",
        "wizards/fusion_billing_change_plan_views.xml",
        "views/fusion_billing_subscription_views.xml",
        "views/fusion_billing_usage_event_views.xml",
        "views/fusion_billing_webhook_event_views.xml",
        "views/fusion_billing_reconciliation_views.xml",
        "views/account_move_views.xml",
        "views/fusion_billing_overview_views.xml",
        "views/res_partner_views.xml",
        "wizards/fusion_billing_api_key_wizard_views.xml",
        "wizards/fusion_billing_reconciliation_import_views.xml",
        "views/fusion_billing_menus.xml",
        "views/fusion_billing_alert_views.xml",
        "views/fusion_billing_portal_templates.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "fusion_billing/static/src/scss/*.scss",
        ],
        "web.assets_tests": [
            "fusion_billing/static/tests/tours/**/*",
        ],
    },
    "demo": [
        "demo/fusion_billing_demo.xml",
    ],
}
