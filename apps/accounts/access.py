"""Access checks shared by pages, APIs and WebSocket consumers."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

ACCESS = {"support", "sentiment", "recommender_api", "recommender_admin", "registry"}


def user_has_access(user, area: str) -> bool:  # noqa: ANN001
    if area not in ACCESS:
        raise ValueError(f"unknown access area {area!r}")
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(f"accounts.access_{area}"))


def access_required(area: str | None) -> Callable:
    """Page decorator: anonymous → login page; signed in without the role → 403. `None` = any signed-in user."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):  # noqa: ANN001, ANN202
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if area is not None and not user_has_access(request.user, area):
                raise PermissionDenied(f"Your account has no access to {area.replace('_', ' ')}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def HasAccess(area: str) -> type[BasePermission]:  # noqa: N802 - reads like a class in permission_classes
    """DRF permission class for one access area (token within its scope, or session)."""

    class _HasAccess(BasePermission):
        message = f"This API needs access to {area.replace('_', ' ')}."

        def has_permission(self, request, view) -> bool:  # noqa: ANN001
            from services.accounts.tokens import token_allows

            # A token reaches only the API families of its scope, whatever its user's roles allow.
            return user_has_access(request.user, area) and token_allows(auth=request.auth, area=area)

    _HasAccess.__name__ = f"HasAccess_{area}"
    return _HasAccess
