"""The views of the data: each a projection of the lossless records into rows.

One module per kind of view: ``base`` (:class:`View`, :class:`PairView`, the margin mapping),
``pairs`` (``trl``, ``hh``, ``helpsteer``), ``rankings``, ``native``, ``ratings`` (all of judgment
records) and ``sft`` (of conversation sessions), ``redteam`` (of red-team attacks: the pair views' red-team
pairs, ``redteam_eval`` and ``redteam_attempts``). This package holds the catalogue of views by
export format; the names callers use are re-exported.
"""

from export.formats.base import MARGIN_MAPPING_DOC, PairView, View, flat_prompt
from export.formats.native import NativeView
from export.formats.pairs import HelpSteerView, HhView, TrlView, standard_completion, standard_prompt
from export.formats.rankings import RankingsView
from export.formats.ratings import RatingsView
from export.formats.redteam import RedteamAttemptsView, RedteamEvalView, RedteamView
from export.formats.sft import SftView

VIEWS: dict[str, type[View]] = {
    "trl": TrlView,
    "hh": HhView,
    "helpsteer": HelpSteerView,
    "rankings": RankingsView,
    "native": NativeView,
    "ratings": RatingsView,
    "sft": SftView,
    "redteam_eval": RedteamEvalView,
    "redteam_attempts": RedteamAttemptsView,
}

# Views that read criteria, rationale, timestamps: the rest skip those columns for speed.
FULL_RECORD_VIEWS = ("native", "ratings", "helpsteer")

__all__ = [
    "FULL_RECORD_VIEWS",
    "MARGIN_MAPPING_DOC",
    "VIEWS",
    "HelpSteerView",
    "HhView",
    "NativeView",
    "PairView",
    "RankingsView",
    "RatingsView",
    "RedteamAttemptsView",
    "RedteamEvalView",
    "RedteamView",
    "SftView",
    "TrlView",
    "View",
    "flat_prompt",
    "standard_completion",
    "standard_prompt",
]
