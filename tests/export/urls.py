"""The real URLs plus placeholders for base.html's nav names that other apps have not routed yet.

Page tests render base.html, which reverses every nav name; this keeps the export page testable
while those pages are built elsewhere. A name that already resolves is left alone.
"""

from django.http import HttpResponse
from django.urls import NoReverseMatch, path, reverse

from labeling.urls import urlpatterns as real_patterns

_NAV_NAMES = ("home", "rate-home", "rate-profile", "manage-generation", "api-docs", "logout")


def _placeholder(request):
    return HttpResponse("placeholder")


def _missing(name: str) -> bool:
    try:
        reverse(name, urlconf="labeling.urls")
    except NoReverseMatch:
        return True
    return False


urlpatterns = [
    *real_patterns,
    *(path(f"__placeholder__/{name}/", _placeholder, name=name) for name in _NAV_NAMES if _missing(name)),
]
