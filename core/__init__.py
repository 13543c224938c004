"""Billing engine of fusion_billing: pure Python, no Odoo import."""
