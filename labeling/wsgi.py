import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
application = get_wsgi_application()

# With DJANGO_DEBUG off, a server without a shared, strong DJANGO_SECRET_KEY or without
# DJANGO_ALLOWED_HOSTS refuses to start, saying what to set (labeling/security.py).
from labeling.security import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production("web server")

# What start-up built (models, URL patterns, serializers, templates) lives as long as the process:
# keep it out of the cyclic collector's scans, so full collections stay short while serving.
gc.freeze()
