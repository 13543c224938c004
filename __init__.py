# Odoo loads the addon as odoo.addons.fusion_billing; the engine's pytest run imports
# core/ through this package without Odoo, so the Odoo shell is only loaded by Odoo.
if __name__.startswith("odoo.addons."):
    from . import controllers, models, wizards
