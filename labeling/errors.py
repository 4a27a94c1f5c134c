"""Domain errors, how the API turns them into JSON, and the check of input against a column:
part of the shared kernel.

Every app may import this module (it is the one exception to the app dependency order, together
with ``labeling.permissions``), so it imports no app itself: only Django and DRF. A service
raises ``ApplicationError`` (or ``Conflict``) for anything a user caused; the API's exception
handler and the pages show its message, naming the field when there is one.

Before a service writes a value a user gave, it checks it against the model field that stores
it with ``column_check`` (integer range of the field's type, text length, finite numbers), and
reads an id from user text with ``id_or_none`` (ASCII digits only, in the key's range): a value
the column cannot hold is a 400 naming the field, never a database error (a 500), and the
limits are the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeAlias

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Field, ForeignObjectRel
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """An error a user caused, with the HTTP status it maps to and an optional field."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status_code is not None:
            self.status_code = status_code


class Conflict(ApplicationError):
    """The request is valid but the current state refuses it (409)."""

    status_code = 409


class NotFound(ApplicationError):
    """Nothing the caller may see has this id (404): never says whether it exists for others."""

    status_code = 404


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error a client can cause comes back as JSON naming the problem (and field)."""
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
            body["errors"] = {exc.field: [exc.message]}
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(errors)
    response = drf_exception_handler(exc, context)
    if (
        response is not None
        and isinstance(exc, exceptions.ValidationError)
        and isinstance(response.data, list)
    ):
        # Raised with a message in a view, not by a serializer: DRF would answer a bare list.
        messages = [str(m) for m in response.data]
        response.data = {"detail": " ".join(messages), "errors": {"non_field_errors": messages}}
    elif (
        response is not None
        and isinstance(exc, exceptions.ValidationError)
        and isinstance(response.data, dict)
    ):
        first = next(iter(response.data.items()), None)
        if first is not None:
            field, messages = first
            message = messages[0] if isinstance(messages, list) and messages else messages
            response.data = {"detail": f"{field}: {message}", "field": field, "errors": response.data}
    return response


# ------------------------------------------------------------------ input against a column

#: The values each integer column type holds, as PostgreSQL stores them. SQLite would store any
#: 64-bit value in any of them; the same limits on both databases keep a value SQLite accepted
#: from breaking later (a ``lease_seconds`` of 10**12 made every claim of its queue overflow).
INTEGER_RANGES: dict[str, tuple[int, int]] = dict(BaseDatabaseOperations.integer_field_ranges)
#: Text no column can hold: NUL (PostgreSQL refuses it) and unpaired surrogates (not UTF-8).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


#: What ``Model._meta.get_field`` returns: a field, or the reverse side of a relation (no column).
AnyField: TypeAlias = "Field[Any, Any] | ForeignObjectRel"


def _column(field: AnyField) -> Field[Any, Any]:
    """The field whose column holds the values: a foreign key's are those of the key it points to."""
    if isinstance(field, ForeignObjectRel):
        raise TypeError(f"{field!r} is the reverse side of a relation: it has no column")
    target = getattr(field, "target_field", None) if field.is_relation else None
    return target if isinstance(target, Field) else field


def column_range(field: AnyField) -> tuple[int, int]:
    """The lowest and highest value of an integer column (or a foreign key to one)."""
    internal = _column(field).get_internal_type()
    if internal not in INTEGER_RANGES:
        raise TypeError(f"{field!r} is not an integer column")
    return INTEGER_RANGES[internal]


def column_check(
    field: AnyField,
    value: Any,
    *,
    name: str | None = None,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """``value`` if the column of ``field`` can store it, else ``ApplicationError`` naming ``name``
    (by default the field's own name) and the limit.

    - integer fields (small, positive, big, auto, a foreign key): an ``int`` (never a bool) in
      the range of the field's type (``INTEGER_RANGES``), narrowed by ``low`` / ``high``;
    - text fields (``CharField`` and its kinds, ``TextField``): a ``str`` of at most
      ``max_length`` characters, without NUL or unpaired surrogates;
    - ``FloatField``: a finite ``int`` or ``float`` (returned as float), within ``low`` / ``high``;
    - ``BooleanField``: ``True`` or ``False``.

    ``None`` passes only where the field is nullable. Any other field type is a programming
    error (``TypeError``).
    """
    column = _column(field)
    name = name or field.name
    if value is None:
        if field.null:
            return None
        raise ApplicationError(f"{name}: required", field=name)
    internal = column.get_internal_type()
    if internal in INTEGER_RANGES:
        lowest, highest = INTEGER_RANGES[internal]
        lowest = lowest if low is None else max(lowest, math.ceil(low))
        highest = highest if high is None else min(highest, math.floor(high))
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            raise ApplicationError(
                f"{name}: must be a whole number between {lowest} and {highest}", field=name
            )
        return value
    if internal in ("CharField", "TextField", "SlugField", "EmailField", "URLField"):
        if not isinstance(value, str):
            raise ApplicationError(f"{name}: must be text", field=name)
        bad = _UNSTORABLE.search(value)
        if bad is not None:
            what = "NUL" if bad.group(0) == "\x00" else "an unpaired surrogate"
            raise ApplicationError(
                f"{name}: must not contain U+{ord(bad.group(0)):04X} ({what}): no column stores it",
                field=name,
            )
        limit = column.max_length if internal != "TextField" else None
        if limit is not None and len(value) > limit:
            raise ApplicationError(f"{name}: at most {limit} characters (this has {len(value)})", field=name)
        return value
    if internal == "FloatField":
        number = _finite(value)
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            bounds = [f"at least {low}"] * (low is not None) + [f"at most {high}"] * (high is not None)
            raise ApplicationError(
                f"{name}: must be a finite number {' and '.join(bounds)}".rstrip(), field=name
            )
        return number
    if internal == "BooleanField":
        if not isinstance(value, bool):
            raise ApplicationError(f"{name}: must be true or false", field=name)
        return value
    raise TypeError(f"column_check does not know {internal} ({field!r})")


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float, else None (bools, text, inf, nan, ints past a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def decimal_int(text: Any) -> int | None:
    """The integer a string writes in the ASCII digits 0-9 (with an optional leading ``-``), else
    None. ``str.isdigit()`` is true for "²" too, which ``int()`` refuses (a 500), and for other
    scripts' digits, which ``int()`` reads as numbers: user text goes through this instead."""
    if not isinstance(text, str):
        return None
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdecimal()):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than Python reads (4300): no column holds it anyway
        return None


def id_or_none(value: Any, field: AnyField) -> int | None:
    """``value`` as a value of the integer column ``field`` (usually ``Model._meta.pk``): an int
    (not a bool) or a string of ASCII digits, within the column's range; None for anything else
    (a name, "²", a number no row can have). Looking up None finds nothing: the caller says
    "unknown" (a 400), where the raw value would have made the database raise (a 500)."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else decimal_int(value)
    if number is None:
        return None
    low, high = column_range(field)
    return number if low <= number <= high else None
