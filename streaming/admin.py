"""Admin for the streaming engine: live sessions and workers, the load dashboard, and the levers."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_list import pagination, results
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from streaming import services
from streaming.conf import streaming_settings
from streaming.models import (
    AuditEntry,
    LimitOverride,
    LoadSample,
    ServiceConfig,
    StreamOptions,
    StreamSession,
    WorkerProcess,
)
from streaming.ops import admin_actions as mitigation
from streaming.ops import admin_cells as cells
from streaming.ops import dashboard
from streaming.ops.records import LOAD_FIELDS
from streaming.wire import protocol as p

#: Close codes an admin may choose when disconnecting sessions, and what each tells the client.
DISCONNECT_CODES = [
    (p.CLOSE_FORBIDDEN, f"{p.CLOSE_FORBIDDEN} forbidden: the client must not reconnect"),
    (p.CLOSE_OVERLOADED, f"{p.CLOSE_OVERLOADED} overloaded: the client retries later"),
    (p.CLOSE_RESTART, f"{p.CLOSE_RESTART} restart: the client reconnects and resumes now"),
    (p.CLOSE_UNAUTHENTICATED, f"{p.CLOSE_UNAUTHENTICATED} unauthenticated: the client needs a new token"),
    (p.CLOSE_NORMAL, f"{p.CLOSE_NORMAL} normal closure"),
]


class ReadOnlyMixin:
    """Records written by the workers: admins look, filter and act, but never edit them by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LiveModelAdmin(admin.ModelAdmin):
    """A `live.json` next to the change list: its rows as the admin renders them, polled by live.js."""

    class Media:
        js = ["streaming/admin/live.js"]

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        live = self.admin_site.admin_view(self.live_view)
        return [path("live.json", live, name=f"{opts.app_label}_{opts.model_name}_live"), *super().get_urls()]

    def live_view(self, request: HttpRequest) -> JsonResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return JsonResponse({"error": "bad_request", "message": "Unknown filter."}, status=400)
        changelist.formset = None
        rows = [
            {"pk": str(obj.pk), "cells": [str(cell) for cell in cells]}
            for obj, cells in zip(changelist.result_list, results(changelist), strict=True)
        ]
        return JsonResponse(
            {
                "count": changelist.result_count,
                "full_count": changelist.full_result_count,
                "paginator": render_to_string("admin/pagination.html", pagination(changelist)),
                "rows": rows,
                "at": timezone.now().isoformat(),
            }
        )


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("closed", "Closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("open", "closed"):
            return queryset.filter(closed_at__isnull=self.value() == "open")
        return queryset


class ServiceFilter(admin.SimpleListFilter):
    """Sessions subscribed to a service (subscriptions are stored as "service/topic" strings)."""

    title = "service"
    parameter_name = "service"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in services.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(subscriptions__icontains=f'"{self.value()}/')
        return queryset


class DisconnectForm(forms.Form):
    code = forms.TypedChoiceField(choices=DISCONNECT_CODES, coerce=int, initial=p.CLOSE_FORBIDDEN)
    reason = forms.CharField(max_length=120, initial="Disconnected by an administrator.")


@admin.register(StreamSession)
class StreamSessionAdmin(ReadOnlyMixin, LiveModelAdmin):
    list_display = [
        cells.session,
        cells.connected,
        cells.subscriptions,
        cells.messages,
        cells.activity,
    ]
    list_filter = [
        OpenFilter,
        ServiceFilter,
        ("worker", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["user", "application", "worker"]
    search_fields = ["session_id", "user__username", "remote_addr"]
    actions = ["disconnect"]
    date_hierarchy = "connected_at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        """Rows are read-only, but closing live sessions needs the change permission."""
        return request.user.has_perm("streaming.change_streamsession")

    @admin.action(description="Disconnect selected sessions…", permissions=["disconnect"])
    def disconnect(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Ask for a close code (4403 by default), then close the open ones on every worker."""
        form = DisconnectForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            ids = queryset.filter(closed_at__isnull=True).values_list("session_id", flat=True)
            count = mitigation.sessions_disconnect(
                session_ids=ids,
                code=form.cleaned_data["code"],
                reason=form.cleaned_data["reason"],
                user=request.user,
            )
            self.message_user(request, f"Disconnecting {count} open session(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/streaming/streamsession/disconnect.html",
            {
                **self.admin_site.each_context(request),
                "title": "Disconnect sessions",
                "form": form,
                "sessions": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(WorkerProcess)
class WorkerProcessAdmin(ReadOnlyMixin, LiveModelAdmin):
    list_display = [
        cells.worker,
        "state",
        cells.worker_load,
        cells.worker_messages,
        cells.resources,
        cells.latency,
        cells.heartbeat,
    ]
    list_filter = ["state", "host"]
    actions = ["drain"]
    change_list_template = "admin/streaming/workerprocess/change_list.html"

    def has_drain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("streaming.change_workerprocess")

    @admin.action(description="Drain selected workers (clients reconnect elsewhere)", permissions=["drain"])
    def drain(self, request: HttpRequest, queryset: QuerySet) -> None:
        live = queryset.filter(state=WorkerProcess.State.RUNNING)
        for worker_id in live.values_list("worker_id", flat=True):
            mitigation.worker_drain(worker_id=worker_id, user=request.user)
        self.message_user(request, f"Draining {live.count()} worker(s).", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        board = self.admin_site.admin_view(self.dashboard_view)
        data = self.admin_site.admin_view(self.dashboard_data_view)
        return [
            path("dashboard/", board, name="streaming_dashboard"),
            path("dashboard/data.json", data, name="streaming_dashboard_data"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/streaming/dashboard.html",
            {
                **self.admin_site.each_context(request),
                "title": "Streaming load, last hour",
                "data": dashboard.dashboard_data(now=timezone.now()),
                "opts": self.model._meta,
            },
        )

    def dashboard_data_view(self, request: HttpRequest) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(dashboard.dashboard_data(now=timezone.now()))


@admin.register(ServiceConfig)
class ServiceConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "updated_at"]
    list_filter = ["enabled"]
    readonly_fields = ["name", "updated_at"]
    actions = ["enable", "disable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        mitigation.service_configs_ensure()
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: ServiceConfig, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        verb = "enable" if obj.enabled else "disable"
        mitigation.admin_action_audit(user=request.user, detail=f"{verb} service {obj.name}")

    @admin.action(description="Enable selected services", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, True)

    @admin.action(description="Disable selected services (ends their subscriptions)", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, False)

    def _switch(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        names = list(queryset.values_list("name", flat=True))
        count = mitigation.services_switch(names=names, enabled=enabled, user=request.user)
        self.message_user(
            request, f"{'Enabled' if enabled else 'Disabled'} {count} service(s).", messages.SUCCESS
        )


@admin.register(LimitOverride)
class LimitOverrideAdmin(admin.ModelAdmin):
    list_display = ["limit", "scope", "user", "group", "service", "worker_id", "value", "updated_at"]
    list_filter = ["limit", "scope"]
    autocomplete_fields = ["user", "group"]
    change_list_template = "admin/streaming/limitoverride/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        defaults = [(label, getattr(streaming_settings, name)) for name, label in LimitOverride.LIMITS]
        return super().changelist_view(request, {**(extra_context or {}), "limit_defaults": defaults})

    def save_model(self, request: HttpRequest, obj: LimitOverride, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        mitigation.limits_reload(user=request.user, detail=f"{'change' if change else 'add'} limit {obj}")

    def delete_model(self, request: HttpRequest, obj: LimitOverride) -> None:
        super().delete_model(request, obj)
        mitigation.limits_reload(user=request.user, detail=f"delete limit {obj}")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = ", ".join(str(obj) for obj in queryset)
        super().delete_queryset(request, queryset)
        mitigation.limits_reload(user=request.user, detail=f"delete limits {names}")


class StreamOptionsForm(forms.ModelForm):
    service = forms.ChoiceField(choices=lambda: [(name, name) for name in services.names()])

    class Meta:
        model = StreamOptions
        fields = "__all__"


@admin.register(StreamOptions)
class StreamOptionsAdmin(admin.ModelAdmin):
    """Per-service retention, latest value, presence and deltas; empty fields keep the defaults."""

    form = StreamOptionsForm
    list_display = ["service", cells.options_in_force, "updated_at"]

    def save_model(self, request: HttpRequest, obj: StreamOptions, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        mitigation.stream_options_reload(user=request.user, detail=f"set stream options of {obj}")

    def delete_model(self, request: HttpRequest, obj: StreamOptions) -> None:
        super().delete_model(request, obj)
        mitigation.stream_options_reload(user=request.user, detail=f"reset stream options of {obj}")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = ", ".join(str(obj) for obj in queryset)
        super().delete_queryset(request, queryset)
        mitigation.stream_options_reload(user=request.user, detail=f"reset stream options of {names}")


@admin.register(LoadSample)
class LoadSampleAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["at", "worker", *LOAD_FIELDS]
    list_filter = [("worker", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["worker"]
    date_hierarchy = "at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "at",
        "kind",
        "user",
        "application",
        cells.audit_session,
        "remote_addr",
        "close_code",
        "detail",
    ]
    list_filter = ["kind"]
    list_select_related = ["user", "application"]
    search_fields = ["user__username", "session_id", "remote_addr", "detail"]
    date_hierarchy = "at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
