from . import portal
from . import reconciliation
from . import summary
from . import usage
