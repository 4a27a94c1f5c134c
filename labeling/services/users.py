"""Users and roles."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from labeling.audit import audit_changes, audit_record
from labeling.errors import ApplicationError, column_check
from labeling.models import User

# ---------------------------------------------------------------------------------- users


def user_create(*, username: str, password: str, role: str, email: str = "") -> User:
    """Create a user with a role. Admins get Django admin access; nobody else does.

    ``username`` (at most 150 characters) and ``email`` are checked against their columns;
    errors name the field and nothing is written."""
    if role not in User.Role.values:
        raise ApplicationError(f"role: must be one of {', '.join(User.Role.values)}", field="role")
    if not username:
        raise ApplicationError("username: required", field="username")
    username = column_check(User._meta.get_field("username"), username)
    email = column_check(User._meta.get_field("email"), email)
    if User.objects.filter(username=username).exists():
        raise ApplicationError(f"username: {username!r} is taken", field="username", status_code=409)
    user = User(username=username, email=email, role=role)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(f"password: {' '.join(exc.messages)}", field="password")
    user.set_password(password)
    user.is_staff = user.is_superuser = role == User.Role.ADMIN
    user.save()
    user_audit_saved(user=user, before=None)
    return user


#: What the audit log records of a user's changes (never the password: only that it changed).
USER_AUDITED_FIELDS = ("username", "email", "role", "is_active", "is_staff", "is_superuser")


def user_audit_values(user: User) -> dict[str, object]:
    return {field: getattr(user, field) for field in USER_AUDITED_FIELDS}


def user_audit_saved(*, user: User, before: dict[str, object] | None) -> None:
    """Record a user made (``before`` None) or changed (``before``: ``user_audit_values`` then):
    ``user.create``; ``user.role_change``; ``user.deactivate`` / ``user.activate``; and
    ``user.update`` for the other fields; each with the before/after of every changed field."""
    after = user_audit_values(user)
    if before is None:
        audit_record("user.create", target=user, changes=after)
        return
    changes = audit_changes(before, after)
    if "role" in changes:
        audit_record("user.role_change", target=user, changes=changes)
    if "is_active" in changes:
        audit_record("user.activate" if user.is_active else "user.deactivate", target=user, changes=changes)
    if set(changes) - {"role", "is_active"}:
        audit_record("user.update", target=user, changes=changes)
