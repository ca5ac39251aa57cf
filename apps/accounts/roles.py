"""The suite's roles: Django groups holding the access permissions of apps.accounts.Access."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission


@dataclass(frozen=True)
class Role:
    key: str
    group: str  # the Django group's name, shown in the admin
    permissions: tuple[str, ...]  # codenames on accounts.Access


ROLES: dict[str, Role] = {
    role.key: role
    for role in (
        Role("support_agent", "support agent", ("access_support",)),
        Role("risk_analyst", "risk analyst", ("access_sentiment",)),
        Role(
            "admin",
            "admin",
            ("access_support", "access_sentiment", "access_recommender_api", "access_recommender_admin", "access_registry"),
        ),
        Role("api_client", "api client", ("access_recommender_api",)),
    )
}


def roles_sync(sender=None, **kwargs) -> None:  # noqa: ANN001 - post_migrate signature
    """Create the role groups and give each exactly its permissions (runs after every migrate)."""
    from django.contrib.auth.management import create_permissions

    if sender is not None:
        create_permissions(sender, verbosity=0, using=kwargs.get("using", "default"))
    for role in ROLES.values():
        group, _ = Group.objects.get_or_create(name=role.group)
        perms = Permission.objects.filter(content_type__app_label="accounts", codename__in=role.permissions)
        group.permissions.set(perms)


def role_get(key: str) -> Role:
    try:
        return ROLES[key]
    except KeyError:
        raise ValueError(f"Unknown role {key!r}; choose one of: {', '.join(ROLES)}") from None


def user_roles(user) -> list[str]:  # noqa: ANN001
    if not user.is_authenticated:
        return []
    names = set(user.groups.values_list("name", flat=True))
    return [role.key for role in ROLES.values() if role.group in names or (user.is_superuser and role.key == "admin")]
