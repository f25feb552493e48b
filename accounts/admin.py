"""Admin for users and approved groups; saving and deleting go through accounts.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import ApprovedGroup, User

admin.site.register(User, UserAdmin)


class ApprovedGroupForm(forms.ModelForm):
    services = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    publish_services = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApprovedGroup
        fields = ["group", "services", "publish_services"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keep names no longer registered visible, so saving the form does not drop them silently.
        stored = [*self.initial.get("services", []), *self.initial.get("publish_services", [])]
        choices = [(name, name) for name in sorted({*services.known_service_names(), *stored})]
        self.fields["services"].choices = choices
        self.fields["publish_services"].choices = choices


@admin.register(ApprovedGroup)
class ApprovedGroupAdmin(admin.ModelAdmin):
    form = ApprovedGroupForm
    list_display = ["group", "streams", "publishes", "updated_at"]
    search_fields = ["group__name"]

    @admin.display(description="may stream")
    def streams(self, obj: ApprovedGroup) -> str:
        return ", ".join(obj.services) or "—"

    @admin.display(description="may publish")
    def publishes(self, obj: ApprovedGroup) -> str:
        return ", ".join(obj.publish_services) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: ApprovedGroup | None = None) -> list[str]:
        return ["group"] if obj else []

    def save_model(self, request: HttpRequest, obj: ApprovedGroup, form: forms.Form, change: bool) -> None:
        approval = services.group_approve(
            group=obj.group,
            services=form.cleaned_data["services"],
            publish_services=form.cleaned_data["publish_services"],
        )
        obj.pk = approval.pk

    def delete_model(self, request: HttpRequest, obj: ApprovedGroup) -> None:
        services.group_revoke(group=obj.group)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApprovedGroup]) -> None:
        for approval in queryset.select_related("group"):
            services.group_revoke(group=approval.group)
