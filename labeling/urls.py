"""Root URLs. Each app lists its routes in its own ``urls.py`` (``api_patterns``, ``page_patterns``)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from comparisons import urls as comparisons_urls
from export import urls as export_urls
from labeling import app_urls as labeling_urls
from labeling.views import account as account_views
from model_runner import urls as model_runner_urls

api_v1 = [
    *labeling_urls.api_patterns,
    *comparisons_urls.api_patterns,
    *model_runner_urls.api_patterns,
    *export_urls.api_patterns,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's login page behind the login throttle (labeling.throttles); axes locks out.
    path("accounts/login/", account_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script), not inline:
    # the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    *labeling_urls.page_patterns,
    *comparisons_urls.page_patterns,
    *model_runner_urls.page_patterns,
    *export_urls.page_patterns,
]

# Errors: JSON under /api/, Preflab's pages elsewhere (labeling/views/errors.py).
handler400 = "labeling.views.errors.bad_request"
handler403 = "labeling.views.errors.permission_denied"
handler404 = "labeling.views.errors.page_not_found"
handler500 = "labeling.views.errors.server_error"
