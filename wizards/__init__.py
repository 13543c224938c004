from . import fusion_billing_api_key_wizard
from . import fusion_billing_change_plan
from . import fusion_billing_reconciliation_import
from . import fusion_billing_reconciliation_import_line
