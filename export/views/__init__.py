"""Template pages of export: ``exports`` (the export page: create snapshots with a live row
estimate, watch and download past ones) and ``overview`` (``/manage/``, every area's state at a
glance: it lives in export, the one app that may read all four)."""

from export.views.exports import export_estimate_json, export_page
from export.views.overview import manage_home
from export.views.reward_checks import export_reward_check

__all__ = ["export_estimate_json", "export_page", "export_reward_check", "manage_home"]
