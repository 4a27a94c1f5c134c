import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
application = get_wsgi_application()

# What start-up built (models, URL patterns, serializers, templates) lives as long as the process:
# keep it out of the cyclic collector's scans, so full collections stay short while serving.
gc.freeze()
