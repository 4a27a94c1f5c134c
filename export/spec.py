"""What an export asks for, validated: filters, view, aggregation and file options.

Every request (API, page, ``manage.py export``) goes through :func:`export_spec_clean`, which
returns an :class:`ExportSpec` whose ``filters`` and ``options`` are normalized JSON: equal
requests store and compare equal, and the same spec over the same data writes the same bytes.
Bad input raises ``ApplicationError`` (400) whose ``field`` names the offending key, e.g.
``filters.min_agreement`` or ``options.standard``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from export.models import ExportRun
from export.redteam_filters import redteam_filters_check, redteam_filters_clean
from export.selectors.sessions import SESSION_FILTERS
from labeling.errors import ApplicationError, column_check, id_or_none
from labeling.models import Queue, Rubric, SessionTemplate
from model_runner.models import Generator

FILTER_KEYS = (
    "queues",
    "modes",
    "rubric_versions",
    "since",
    "until",
    "generators",
    "tags",
    "min_judgments",
    "min_agreement",
    "exclude_flagged",
    "exclude_gold",
    "exclude_paused_raters",
    "sources",
    "harm_categories",
)
OPTION_KEYS = (
    "standard",
    "implicit_prompt",
    "pairs",
    "files",
    "gzip",
    "test_fraction",
    "validation_fraction",
    "redteam_split",
)
FILE_KINDS = ("jsonl", "parquet")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

DEFAULT_OPTIONS: dict[str, Any] = {
    "standard": False,
    "implicit_prompt": False,
    "pairs": False,
    "files": ["jsonl", "parquet"],
    "gzip": False,
    "test_fraction": 0.1,
    "validation_fraction": 0.0,
    "redteam_split": False,
}

# Views that work on pairwise preferences, and so can aggregate judgments per candidate pair.
PAIR_VIEWS = (ExportRun.Format.TRL, ExportRun.Format.HH, ExportRun.Format.HELPSTEER)


@dataclass(frozen=True)
class ExportSpec:
    name: str = "preferences"
    format: str = ExportRun.Format.TRL.value
    aggregation: str = ExportRun.Aggregation.RAW.value
    filters: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))

    @property
    def needs_groups(self) -> bool:
        """Whether judgments must be read grouped by comparison (aggregation or per-comparison filters)."""
        return (
            self.aggregation != ExportRun.Aggregation.RAW
            or "min_judgments" in self.filters
            or "min_agreement" in self.filters
        )


def export_spec_clean(
    *,
    name: Any = "preferences",
    format: Any = ExportRun.Format.TRL.value,
    aggregation: Any = ExportRun.Aggregation.RAW.value,
    filters: Any = None,
    options: Any = None,
) -> ExportSpec:
    """Validate a whole export request (see the module docstring)."""
    clean_name = export_name_clean(name=name)
    fmt = _choice(format, ExportRun.Format.values, field="format", what="format")
    agg = _choice(aggregation, ExportRun.Aggregation.values, field="aggregation", what="aggregation")
    if agg != ExportRun.Aggregation.RAW and fmt not in PAIR_VIEWS:
        raise ApplicationError(
            f"Aggregation '{agg}' applies to the pairwise views (trl, hh, helpsteer); the '{fmt}' view "
            "is one row per judgment, so use aggregation 'raw'.",
            field="aggregation",
        )
    clean_filters = export_filters_clean(filters=filters)
    if fmt == ExportRun.Format.SFT:
        for key in clean_filters:
            if key not in SESSION_FILTERS:
                raise ApplicationError(
                    f"Filter '{key}' does not apply to the sft view (finished conversation sessions); "
                    f"it takes {', '.join(SESSION_FILTERS)}.",
                    field=f"filters.{key}",
                )
    redteam_filters_check(clean_filters, fmt=fmt, pair_views=PAIR_VIEWS)
    clean_options = export_options_clean(options=options, format=fmt)
    return ExportSpec(
        name=clean_name, format=fmt, aggregation=agg, filters=clean_filters, options=clean_options
    )


def _choice(value: Any, allowed: list[str], *, field: str, what: str) -> str:
    if value not in allowed:
        raise ApplicationError(
            f"Unknown {what} {value!r}. Supported: {', '.join(allowed)}.",
            field=field,
        )
    return str(value)


def export_name_clean(*, name: Any) -> str:
    """A dataset name that is also a safe file name: letters, digits, '.', '_', '-'; at most 100."""
    # fullmatch: "$" would also match before a final line break ("data\n" is no file name).
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ApplicationError(
            f"Name {_shown(name)} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.",
            field="name",
        )
    return column_check(ExportRun._meta.get_field("name"), name)


# --- filters ------------------------------------------------------------------------------------


def export_filters_clean(*, filters: Any) -> dict[str, Any]:
    """Validate export filters and return their normalized, JSON-ready form.

    * ``queues``, ``rubric_versions``: lists of existing queue / rubric ids (a rubric row is one
      version); sorted, unique.
    * ``modes``: conversation template modes (``chat``, ``redteam``): judgments of conversation
      queues of these modes (``sft``: their sessions); sorted, unique.
    * ``since`` (inclusive), ``until`` (exclusive): ISO 8601 dates or datetimes on the judgment's
      creation time (``sft``: the session's finish time); without an offset read in the site time
      zone; stored as UTC ISO strings.
    * ``generators``: generator names or ids; a comparison is kept when every candidate in it came
      from one of them. Stored as sorted names.
    * ``tags``: prompt tags; a judgment is kept when its prompt has any of them.
    * ``min_judgments`` (int >= 1), ``min_agreement`` (0..1; the majority share): aggregated, per
      row (a pooled candidate pair: its ``n_judgments`` and ``agreement``); raw, per comparison
      (see ``export.records``).
    * ``exclude_flagged``: leave out comparisons any rater flagged (a non-empty ``flags`` list).
    * ``exclude_gold``: leave out judgments on gold items.
    * ``exclude_paused_raters``: leave out judgments by deactivated users (``is_active`` false)
      and by raters paused from the judgment's queue (an open gold auto-pause).

    * ``sources``, ``harm_categories``: red-team data (``export.redteam_filters``).

    Falsy booleans are dropped, so ``{"exclude_gold": false}`` equals ``{}``.
    """
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise ApplicationError('filters must be an object, e.g. {"queues": [1]}.', field="filters")
    for key in filters:
        if key not in FILTER_KEYS:
            raise ApplicationError(
                f"Unknown filter '{key}'. Supported filters: {', '.join(FILTER_KEYS)}.",
                field=f"filters.{key}",
            )
    clean: dict[str, Any] = {}
    if filters.get("queues") is not None:
        clean["queues"] = _clean_ids(filters["queues"], key="queues", model=Queue, what="queue")
    if filters.get("modes") is not None:
        clean["modes"] = _clean_strings(filters["modes"], key="modes")
        for mode in clean["modes"]:
            _choice(mode, SessionTemplate.Mode.values, field="filters.modes", what="mode")
    if filters.get("rubric_versions") is not None:
        clean["rubric_versions"] = _clean_ids(
            filters["rubric_versions"], key="rubric_versions", model=Rubric, what="rubric version"
        )
    for key in ("since", "until"):
        if filters.get(key) is not None:
            clean[key] = _clean_datetime(filters[key], key=key).isoformat()
    if "since" in clean and "until" in clean and clean["since"] >= clean["until"]:
        raise ApplicationError(
            f"Filter 'until' ({clean['until']}) must be later than 'since' ({clean['since']}).",
            field="filters.until",
        )
    if filters.get("generators") is not None:
        clean["generators"] = _clean_generators(filters["generators"])
    if filters.get("tags") is not None:
        clean["tags"] = _clean_strings(filters["tags"], key="tags")
    if filters.get("min_judgments") is not None:
        value = filters["min_judgments"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ApplicationError(
                f"Filter 'min_judgments' must be a whole number from 1 to 1000, not {value!r}.",
                field="filters.min_judgments",
            )
        if value > 1:
            clean["min_judgments"] = value
    if filters.get("min_agreement") is not None:
        value = filters["min_agreement"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ApplicationError(
                f"Filter 'min_agreement' must be a number from 0 to 1, not {value!r}.",
                field="filters.min_agreement",
            )
        if value > 0:
            clean["min_agreement"] = float(value)
    clean.update(redteam_filters_clean(filters))
    for key in ("exclude_flagged", "exclude_gold", "exclude_paused_raters"):
        if filters.get(key) is not None:
            if not isinstance(filters[key], bool):
                raise ApplicationError(
                    f"Filter '{key}' must be true or false, not {filters[key]!r}.", field=f"filters.{key}"
                )
            if filters[key]:
                clean[key] = True
    return clean


def _as_list(value: Any, *, key: str) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ApplicationError(
            f"Filter '{key}' is empty; leave it out to keep everything.", field=f"filters.{key}"
        )
    return values


def _clean_ids(value: Any, *, key: str, model: Any, what: str) -> list[int]:
    ids: set[int] = set()
    missing: set[str] = set()
    pk_field = model._meta.get_field("id")
    for v in _as_list(value, key=key):
        # bool is an int subclass; True is not an id. Digits are ASCII 0-9 ("²" is no id).
        text = v.strip() if isinstance(v, str) else v
        if isinstance(v, bool) or not isinstance(v, int | str) or not (isinstance(v, int) or _digits(text)):
            raise ApplicationError(
                f"Filter '{key}' takes a list of {what} ids; {_shown(v)} is not one.", field=f"filters.{key}"
            )
        pk = id_or_none(text, pk_field)
        if pk is None:  # a number past the id column: no row has it
            missing.add(str(text))
        else:
            ids.add(pk)
    found = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing |= {str(i) for i in ids - found}
    if missing:
        shown = sorted(missing, key=lambda m: (len(m), m))
        raise ApplicationError(
            f"Filter '{key}': no {what} with id {', '.join(_shown(m, quote=False) for m in shown[:10])}.",
            field=f"filters.{key}",
        )
    return sorted(ids)


def _digits(text: Any) -> bool:
    """ASCII digits 0-9 only: ``str.isdigit()`` also takes "²", which ``int()`` refuses."""
    return isinstance(text, str) and text.isascii() and text.isdecimal()


def _shown(value: Any, *, quote: bool = True) -> str:
    """A value for a message, cut to 40 characters (an id of ten thousand digits stays readable)."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _clean_strings(value: Any, *, key: str) -> list[str]:
    out: set[str] = set()
    for v in _as_list(value, key=key):
        if not isinstance(v, str) or not v.strip():
            raise ApplicationError(
                f"Filter '{key}' takes a list of non-empty strings; {v!r} is not one.", field=f"filters.{key}"
            )
        out.add(v.strip())
    return sorted(out)


def _clean_generators(value: Any) -> list[str]:
    ids: set[int] = set()
    names: set[str] = set()
    unknown: set[str] = set()
    pk_field = Generator._meta.get_field("id")
    for v in _as_list(value, key="generators"):
        if isinstance(v, int) and not isinstance(v, bool):
            pk = id_or_none(v, pk_field)
            if pk is None:  # past the id column: no generator has it
                unknown.add(str(v))
            else:
                ids.add(pk)
        elif isinstance(v, str) and v.strip():
            names.add(v.strip())
        else:
            raise ApplicationError(
                f"Filter 'generators' takes generator names or ids; {v!r} is not one.",
                field="filters.generators",
            )
    found = list(Generator.objects.filter(Q(pk__in=ids) | Q(name__in=names)).values_list("pk", "name"))
    missing = sorted(
        {str(i) for i in ids - {pk for pk, _ in found}} | (names - {n for _, n in found}) | unknown
    )
    if missing:
        raise ApplicationError(
            f"Filter 'generators': no generator named or numbered "
            f"{', '.join(_shown(m, quote=False) for m in missing[:10])}.",
            field="filters.generators",
        )
    return sorted({n for _, n in found})


def _clean_datetime(value: Any, *, key: str) -> datetime:
    parsed: datetime | None = None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
            if parsed is None:
                day = parse_date(value.strip())
                parsed = datetime.combine(day, time.min) if day else None
        except ValueError:
            parsed = None
    if parsed is None:
        raise ApplicationError(
            f"Filter '{key}': {value!r} is not an ISO 8601 date or datetime (e.g. 2025-01-31T12:00:00Z).",
            field=f"filters.{key}",
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed.astimezone(UTC)


# --- options ------------------------------------------------------------------------------------


def export_options_clean(*, options: Any, format: str) -> dict[str, Any]:
    """View and file options, every key present (defaults filled in), checked against the view.

    ``standard`` / ``implicit_prompt`` apply to ``trl``; ``pairs`` to ``rankings``; ``files`` is
    a non-empty subset of jsonl, parquet; ``gzip`` compresses the JSONL files; ``test_fraction``
    and ``validation_fraction`` (each 0..0.5) size the prompt-hash splits; ``redteam_split`` holds
    red-team prompts out in their own ``redteam`` split.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ApplicationError('options must be an object, e.g. {"standard": true}.', field="options")
    for key in options:
        if key not in OPTION_KEYS:
            raise ApplicationError(
                f"Unknown option '{key}'. Supported options: {', '.join(OPTION_KEYS)}.",
                field=f"options.{key}",
            )
    clean = dict(DEFAULT_OPTIONS)
    for key in ("standard", "implicit_prompt", "pairs", "gzip", "redteam_split"):
        if options.get(key) is not None:
            if not isinstance(options[key], bool):
                raise ApplicationError(
                    f"Option '{key}' must be true or false, not {options[key]!r}.", field=f"options.{key}"
                )
            clean[key] = options[key]
    views_for = {"standard": ("trl",), "implicit_prompt": ("trl",), "pairs": ("rankings",)}
    for key, views in views_for.items():
        if clean[key] and format not in views:
            raise ApplicationError(
                f"Option '{key}' applies to the {', '.join(views)} view, not '{format}'.",
                field=f"options.{key}",
            )
    if options.get("files") is not None:
        files = options["files"] if isinstance(options["files"], list) else [options["files"]]
        bad = [f for f in files if f not in FILE_KINDS]
        if bad or not files:
            raise ApplicationError(
                f"Option 'files' takes a non-empty list of {', '.join(FILE_KINDS)}; got {options['files']!r}.",
                field="options.files",
            )
        clean["files"] = [k for k in FILE_KINDS if k in files]
    for key in ("test_fraction", "validation_fraction"):
        if options.get(key) is not None:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 0.5:
                raise ApplicationError(
                    f"Option '{key}' must be a number from 0 to 0.5, not {value!r}.", field=f"options.{key}"
                )
            clean[key] = float(value)
    return clean
