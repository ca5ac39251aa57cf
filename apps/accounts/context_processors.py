from __future__ import annotations

from apps.accounts.access import ACCESS, user_has_access


def roles(request) -> dict[str, object]:  # noqa: ANN001
    user = getattr(request, "user", None)
    return {"access": {area: user_has_access(user, area) for area in ACCESS} if user else {}}
