"""OWS exception reports and KVP parameters of WMTS 1.0.0 (OGC 07-057r7, OWS Common 1.1).

Parameter names are case-insensitive (values are not); an error is an ``ExceptionReport`` with the
standard's ``exceptionCode``, a ``locator`` naming the parameter and the HTTP status of WMTS table 28.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from fastapi import Request
from fastapi.responses import Response

OWS_NS = "http://www.opengis.net/ows/1.1"
XML = "application/xml"
STATUS = {
    "MissingParameterValue": 400,
    "InvalidParameterValue": 400,
    "TileOutOfRange": 400,
    "VersionNegotiationFailed": 400,
    "OperationNotSupported": 501,
}


class OwsError(Exception):
    """A WMTS exception: its ``exceptionCode``, the parameter at fault and a text naming the problem."""

    def __init__(self, code: str, locator: str, text: str) -> None:
        super().__init__(text)
        self.code, self.locator, self.text = code, locator, text

    @property
    def status(self) -> int:
        """The HTTP status the standard gives this exception code."""
        return STATUS.get(self.code, 500)


def invalid(locator: str, text: str) -> OwsError:
    """An ``InvalidParameterValue`` exception for ``locator``."""
    return OwsError("InvalidParameterValue", locator, text)


def exception_report(error: OwsError) -> Response:
    """The ``ExceptionReport`` document of one exception, with its status."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ExceptionReport xmlns="{OWS_NS}" version="1.1.0" xml:lang="en">'
        f"<Exception exceptionCode={quoteattr(error.code)} locator={quoteattr(error.locator)}>"
        f"<ExceptionText>{escape(error.text)}</ExceptionText></Exception></ExceptionReport>"
    )
    return Response(body, status_code=error.status, media_type=XML)


class Kvp:
    """The request's query parameters by lower-cased name (WMTS names are case-insensitive)."""

    def __init__(self, request: Request) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            self.values.setdefault(name.lower(), []).append(value)

    def get(self, name: str) -> str | None:
        """The one value of ``name`` (None when absent); given twice with different values is an error."""
        found = self.values.get(name.lower())
        if not found:
            return None
        if len(set(found)) > 1:
            raise invalid(name, f"Parameter {name} is given {len(found)} times with different values; give it once.")
        return found[0]

    def required(self, name: str) -> str:
        """The value of a mandatory parameter; ``MissingParameterValue`` when absent or empty."""
        value = self.get(name)
        if value is None or not value.strip():
            raise OwsError("MissingParameterValue", name, f"Parameter {name} is missing.")
        return value.strip()
