"""Top-level URLs: admin, OAuth server, login, the demo page and the streaming HTTP API."""

from django.contrib import admin
from django.urls import include, path

from widgetapp import views

urlpatterns = [
    path("", views.home, name="home"),
    path("app/", views.live, name="app"),
    path("app/callback", views.live, name="app-callback"),
    path("admin/", admin.site.urls),
    path("o/", include("accounts.oauth_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("streaming.urls")),
]
