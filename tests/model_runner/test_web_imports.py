import subprocess
import sys

from django.conf import settings


def test_web_side_modules_do_not_import_torch():
    """The web process loads apis, views, services, tasks and the backends package without torch."""
    code = (
        "import django, sys; django.setup(); "
        "import labeling.urls, model_runner.apis, model_runner.views, model_runner.services, "
        "model_runner.tasks, model_runner.admin, model_runner.backends, model_runner.management.commands.generate, "
        "model_runner.backends.openai_backend, model_runner.management.commands.bench_generation; "
        "sys.exit(1 if 'torch' in sys.modules or 'transformers' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={"DJANGO_SETTINGS_MODULE": "labeling.settings", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
