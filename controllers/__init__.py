from . import reconciliation
from . import usage
