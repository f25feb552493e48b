"""Top-level URLs: admin, OAuth server, login, the demo page and the streaming HTTP API."""

from django.contrib import admin
from django.urls import include, path

from widgetapp import views

admin.site.site_header = "WidgetApp Streaming"
admin.site.site_title = "WidgetApp Streaming"
admin.site.index_title = "Administration"
# The live sessions and workers lists need the width the app sidebar would take on laptop screens;
# the breadcrumbs and the index page lead everywhere the sidebar did.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", views.home, name="home"),
    path("app/", views.live, name="app"),
    path("app/callback", views.live, name="app-callback"),
    path("app/test-notification", views.test_notification, name="app-test-notification"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("o/", include("accounts.oauth_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("streaming.urls")),
]
