# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``POST /usage``, ``POST /usage/cancel`` and ``GET /usage/openapi.json``
(SPEC §4, §10, §11).

Thin HTTP shell: answer every outcome as JSON, authenticate the bearer key,
then hand the parsed body to ``fusion.billing.usage.event._ingest`` with rights
scoped to the authenticated service. Validation rules live in ``core.usage``.
"""

import functools
import json
import re
from datetime import datetime, timezone

from odoo import http
from odoo.http import request

from ..core import openapi, usage

_BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)
_NO_STORE = ("Cache-Control", "no-store")


def json_reply(reply, *headers):
    """Send a ``core.usage.Reply`` as JSON."""
    return request.make_json_response(
        reply.body, headers=[_NO_STORE, *headers], status=reply.http_status
    )


def method_not_allowed(*allowed):
    methods = ", ".join(allowed)
    return json_reply(
        usage.error_response(usage.METHOD_NOT_ALLOWED, f"use {methods}", 405),
        ("Allow", methods),
    )


def unauthenticated(message):
    return json_reply(
        usage.error_response(usage.UNAUTHENTICATED, message, 401),
        ("WWW-Authenticate", 'Bearer realm="fusion_billing"'),
    )


def payload_too_large():
    return json_reply(
        usage.error_response(
            usage.PAYLOAD_TOO_LARGE,
            f"the body exceeds {usage.MAX_BODY_BYTES} bytes",
            413,
        )
    )


def authenticated_service():
    """The service whose API key signs the request, or None."""
    header = request.httprequest.headers.get("Authorization", "")
    match = _BEARER.fullmatch(header)
    if not match:
        return None
    # No sudo: the check reads the key table with plain SQL; rights are only
    # raised once the key is known, scoped to its service.
    service = request.env["fusion.billing.service"]._authenticate_bearer(match[1])
    return service or None


def read_body():
    """The request body, or None when it is larger than the limit.

    Content-Length is checked before reading; a chunked body is read up to one
    byte past the limit. The body is kept on the request because Odoo replays
    the handler after a serialization failure, when the stream is spent.
    """
    body = getattr(request, "fusion_billing_body", None)
    if body is None:
        httprequest = request.httprequest
        length = httprequest.content_length
        if length is None:
            body = read_chunked(usage.MAX_BODY_BYTES + 1)
        elif length <= usage.MAX_BODY_BYTES:
            body = httprequest.get_data()  # reads Content-Length bytes at most
        else:
            return None
        request.fusion_billing_body = body
    return body if len(body) <= usage.MAX_BODY_BYTES else None


def read_chunked(limit):
    """Read a body without Content-Length, stopping after ``limit`` bytes.

    werkzeug < 2.3 (Odoo 19 on Python <= 3.11) reads such a body to its end in
    get_data(), and Odoo's request wrapper does not expose the stream: take it
    from the wrapped werkzeug request, the way Odoo's own proxies do.
    """
    stream = request.httprequest._HTTPRequest__wrapped.stream
    chunks = []
    size = 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@functools.lru_cache(maxsize=2)
def openapi_text(hour):
    """The document, its examples dated at the start of the current hour."""
    return json.dumps(openapi.build_openapi(hour), ensure_ascii=False)


def api_route(path, readonly=False):
    """Route ``path`` of the service API: bearer keys, so no session and no
    CSRF token; every method reaches the handler, which answers a wrong one in
    JSON where Odoo would send its HTML 405 page; auth='none' routes default to
    a read-only cursor, so writers say ``readonly=False``."""
    return http.route(
        path,
        type="http",
        auth="none",
        methods=None,
        csrf=False,
        save_session=False,
        readonly=readonly,
    )


def service_call(parse, handle):
    """Answer a call of the service API: every refusal (method, database, key,
    encoding, size, body) as JSON, else the ``core.usage.Reply`` of
    ``handle(service, parsed)``, as the service's technical user with rights
    scoped by the handler to that service. ``parse(body, content_type)``
    gives the parsed request or the Reply refusing it."""
    if request.httprequest.method != "POST":
        return method_not_allowed("POST")
    if not request.db:
        # auth='none' routes are also served without a database.
        return unauthenticated(
            "no database selected to check the API key: run the server"
            " with --db-filter or send the X-Odoo-Database header"
        )
    service = authenticated_service()
    if service is None:
        return unauthenticated("missing, unknown, revoked or expired API key")
    encoding = request.httprequest.headers.get("Content-Encoding", "identity")
    if encoding.strip().lower() != "identity":
        return json_reply(
            usage.error_response(
                usage.UNSUPPORTED_MEDIA_TYPE,
                "compressed bodies are not supported: send plain JSON",
                415,
            )
        )
    body = read_body()
    if body is None:
        return payload_too_large()
    parsed = parse(body, request.httprequest.headers.get("Content-Type"))
    if type(parsed) is usage.Reply:
        return json_reply(parsed)
    request.update_env(user=service.env.uid)
    return json_reply(handle(service.with_env(request.env(su=True)), parsed))


class FusionBillingUsageController(http.Controller):
    @api_route("/usage", readonly=False)
    def post_usage(self, **_params):
        return service_call(usage.parse_request, self._ingest_usage)

    def _ingest_usage(self, service, items):
        events = service.env["fusion.billing.usage.event"]
        return usage.build_response(events._ingest(service, items))

    @api_route("/usage/cancel", readonly=False)
    def post_usage_cancel(self, **_params):
        return service_call(usage.parse_cancel_request, self._cancel_usage)

    def _cancel_usage(self, service, items):
        events = service.env["fusion.billing.usage.event"]
        return usage.build_cancel_response(events._cancel(service, items))

    @api_route("/usage/openapi.json", readonly=True)
    def openapi_document(self, **_params):
        if request.httprequest.method not in ("GET", "HEAD"):
            return method_not_allowed("GET", "HEAD")
        hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        text = openapi_text(hour)
        return request.make_response(
            text,
            headers=[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Cache-Control", "public, max-age=300"),
                ("Access-Control-Allow-Origin", "*"),
            ],
        )
