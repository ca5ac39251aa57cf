from __future__ import annotations

from django.urls import path

from apps.support import api

urlpatterns = [
    path("support/messages", api.CustomerMessage.as_view(), name="api-support-messages"),
    path("support/choices", api.CustomerChoice.as_view(), name="api-support-choices"),
    path("support/feedback", api.CustomerFeedback.as_view(), name="api-support-feedback"),
    path("support/conversations/<str:token>/messages", api.CustomerHistory.as_view(), name="api-support-history"),
    path("support/console/conversations", api.ConsoleConversations.as_view(), name="api-support-console-list"),
    path("support/console/conversations/<int:pk>", api.ConsoleConversation.as_view(), name="api-support-console-detail"),
    path("support/console/conversations/<int:pk>/<slug:action>", api.ConsoleAction.as_view(), name="api-support-console-action"),
    path("support/console/messages/<int:pk>/wrong", api.ConsoleMarkWrong.as_view(), name="api-support-console-wrong"),
    path("support/console/messages/<int:pk>/right", api.ConsoleMarkRight.as_view(), name="api-support-console-right"),
    path("support/console/presence", api.ConsolePresence.as_view(), name="api-support-console-presence"),
    path("support/console/canned", api.ConsoleCanned.as_view(), name="api-support-console-canned"),
    path("support/console/kbs", api.ConsoleKnowledgeBases.as_view(), name="api-support-console-kbs"),
    path("support/console/kbs/<slug:name>/rebuild", api.ConsoleKnowledgeBaseRebuild.as_view(), name="api-support-console-rebuild"),
    path("support/console/gaps", api.ConsoleGaps.as_view(), name="api-support-console-gaps"),
    path("support/console/gaps/<int:pk>/add", api.ConsoleGapAdd.as_view(), name="api-support-console-gap-add"),
]
