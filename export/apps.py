from django.apps import AppConfig


class ExportConfig(AppConfig):
    name = "export"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The export durations in GET /metrics (export/metrics.py).
        from export.metrics import export_duration_metrics
        from labeling.metrics import register_collector

        register_collector(export_duration_metrics)
