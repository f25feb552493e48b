"""WidgetApp project package: settings, ASGI entry point, URLs and the Widget domain."""
