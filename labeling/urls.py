"""Root URLs. Each app lists its routes in its own ``urls.py`` (``api_patterns``, ``page_patterns``)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from comparisons import urls as comparisons_urls
from export import urls as export_urls
from labeling import app_urls as labeling_urls
from model_runner import urls as model_runner_urls

api_v1 = [
    *labeling_urls.api_patterns,
    *comparisons_urls.api_patterns,
    *model_runner_urls.api_patterns,
    *export_urls.api_patterns,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    *labeling_urls.page_patterns,
    *comparisons_urls.page_patterns,
    *model_runner_urls.page_patterns,
    *export_urls.page_patterns,
]
