from . import test_back_office
from . import test_models
from . import test_pricing
from . import test_rating
from . import test_reconciliation
from . import test_retention
from . import test_usage_api
from . import test_webhooks
