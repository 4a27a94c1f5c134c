"""Users and roles."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from labeling.errors import ApplicationError
from labeling.models import User

# ---------------------------------------------------------------------------------- users


def user_create(*, username: str, password: str, role: str, email: str = "") -> User:
    """Create a user with a role. Admins get Django admin access; nobody else does."""
    if role not in User.Role.values:
        raise ApplicationError(f"role: must be one of {', '.join(User.Role.values)}", field="role")
    if not username:
        raise ApplicationError("username: required", field="username")
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
    return user
