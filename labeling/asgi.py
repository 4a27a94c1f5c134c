import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
application = get_asgi_application()

# As labeling/wsgi.py: production settings without what production needs refuse to start.
from labeling.security import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production("web server")
