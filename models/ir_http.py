# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from werkzeug.exceptions import HTTPException

from odoo import models
from odoo.http import request

from ..core import usage

# Routes called by the apps: their clients parse JSON, never Odoo's HTML pages.
SERVICE_API_PATHS = frozenset(
    {
        "/usage",
        "/usage/cancel",
        "/usage/openapi.json",
        "/usage/summary",
        "/reconciliation",
    }
)
INTERNAL_ERROR = "internal_error"
_HTTP_ERROR_CODES = {
    400: usage.INVALID_PAYLOAD,
    401: usage.UNAUTHENTICATED,
    405: usage.METHOD_NOT_ALLOWED,
    413: usage.PAYLOAD_TOO_LARGE,
    415: usage.UNSUPPORTED_MEDIA_TYPE,
}


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _handle_error(cls, exception):
        """Answer errors Odoo raises around the service API routes as JSON.

        The handlers themselves answer every bad input; this covers what happens
        outside them (e.g. werkzeug refusing an oversized form body) and
        unexpected failures, after which Odoo has rolled the transaction back.
        """
        if request.httprequest.path not in SERVICE_API_PATHS:
            return super()._handle_error(exception)
        if isinstance(exception, HTTPException) and exception.code:
            status = exception.code
            message = exception.description
        else:
            status = 500
            message = "internal error, nothing was stored; retry later"
        code = _HTTP_ERROR_CODES.get(
            status, INTERNAL_ERROR if status >= 500 else usage.INVALID_PAYLOAD
        )
        reply = usage.error_response(code, message, status)
        return request.make_json_response(
            reply.body, headers=[("Cache-Control", "no-store")], status=status
        )
