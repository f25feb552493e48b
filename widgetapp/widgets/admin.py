"""Admin for widgets."""

from django.contrib import admin

from widgetapp.widgets.models import Widget


@admin.register(Widget)
class WidgetAdmin(admin.ModelAdmin):
    list_display = ["name", "colour", "quantity", "updated_at"]
    search_fields = ["name"]
    list_filter = ["colour"]
    autocomplete_fields = ["viewers"]
