from django.apps import AppConfig


class ModelRunnerConfig(AppConfig):
    name = "model_runner"
    default_auto_field = "django.db.models.BigAutoField"
