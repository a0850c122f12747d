"""A single-valued query parameter given twice is refused (400), so what is served is what is audited.

``bbox=a&bbox=b`` would be read as one value by the route and recorded as two by the audit: the
request is refused instead, naming the parameter. Which parameters are single-valued comes from the
route's own declaration (every declared query parameter whose type is not a sequence), so a new
route or parameter is covered without a list to maintain. ``refuse_repeated`` is an app-wide
dependency (``FastAPI(dependencies=[Depends(refuse_repeated)])``); it runs before the route's own.
"""

from __future__ import annotations

import collections.abc
import types
import typing

from fastapi import Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel

from server.errors import InvalidParameter

_MANY = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)


def _many(annotation: object) -> bool:
    """Whether a parameter of this type takes several values (``list[str]``, ``set[int] | None`` ...)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_many(a) for a in typing.get_args(annotation))
    kind = origin or annotation
    return isinstance(kind, type) and issubclass(kind, _MANY) and not issubclass(kind, (str, bytes))


def _declared(dependant: Dependant) -> dict[str, object]:
    """Every query parameter of a dependant and its sub-dependencies (a parameter model's fields too): name -> type."""
    found: dict[str, object] = {}
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= {f.alias or name: f.annotation for name, f in annotation.model_fields.items()}
        else:
            found[field.alias] = annotation
    for sub in dependant.dependencies:
        found |= _declared(sub)
    return found


_KNOWN: dict[int, tuple[object, frozenset[str]]] = {}  # id(route) -> (route, names); routes live as long as apps


def single_valued(route: object) -> frozenset[str]:
    """The names of the route's declared single-valued query parameters (worked out once per route)."""
    known = _KNOWN.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    dependant = getattr(route, "dependant", None)
    names = frozenset() if dependant is None else frozenset(
        name for name, annotation in _declared(dependant).items() if not _many(annotation)
    )
    _KNOWN[id(route)] = (route, names)
    return names


async def refuse_repeated(request: Request) -> None:
    """Raise ``InvalidParameter`` naming the first single-valued query parameter given more than once."""
    query = request.query_params
    if len(query) == len(query.multi_items()):
        return
    for name in sorted(single_valued(request.scope.get("route"))):
        if len(query.getlist(name)) > 1:
            raise InvalidParameter(f"Parameter '{name}' is given more than once; it takes one value.")
