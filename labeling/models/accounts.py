"""Users, their content opt-outs, API keys and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from knox.models import AbstractAuthToken


class ContentCategory(models.TextChoices):
    """Kinds of disturbing content a warning can name and a rater can opt out of."""

    VIOLENCE = "violence", "Violence or gore"
    SELF_HARM = "self_harm", "Self-harm or suicide"
    SEXUAL = "sexual", "Sexual content"
    HATE = "hate", "Hate speech or harassment"
    CRIME = "crime", "Crime, weapons or drugs"
    OTHER = "other", "Other disturbing content"


# django-stubs cannot type the reverse manager of ApiKey (``user.api_keys``): its base, knox's
# AbstractAuthToken, ships no type information.
class User(AbstractUser):  # type: ignore[django-manager-missing]
    class Role(models.TextChoices):
        RATER = "rater", "Rater"
        REVIEWER = "reviewer", "Reviewer"
        RESEARCHER = "researcher", "Researcher"
        ADMIN = "admin", "Admin"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.RATER)
    content_opt_outs = models.JSONField(
        default=list,
        blank=True,
        help_text="Content categories this rater does not want to see (items carrying them are passed on).",
    )

    disturbing_opt_in = models.BooleanField(
        default=False,
        help_text="Takes red-team work and reviews of disturbing material (queues marked disturbing).",
    )

    @property
    def is_admin_role(self) -> bool:
        return self.role == self.Role.ADMIN or self.is_superuser

    @property
    def can_export(self) -> bool:
        return self.is_admin_role or self.role == self.Role.RESEARCHER


class ApiKey(AbstractAuthToken):
    """A user's API key, sent as ``Authorization: Token <key>``: knox's token (``digest``, the key's
    SHA-512; ``token_key``, its first characters, to recognize it by; ``expiry``), named, with its
    last use. The key itself is shown once, when it is made, and stored nowhere. Revoking deletes
    the row; the audit log keeps the record (``labeling.services.api_keys``)."""

    class Kind(models.TextChoices):
        NAMED = "named", "Named"  # made by its user (/account/keys/, POST /api/v1/auth/keys/)
        LOGIN = "login", "Login"  # made by POST /api/v1/auth/token/; the oldest replaced past the cap

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.NAMED)
    # Written at most once a minute (PREFLAB_API_KEY_TOUCH_SECONDS), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…)"


class AuditEvent(models.Model):
    """Who did what to which object, when, from where (recorded through ``labeling.audit``).

    Append-only: the admin shows events read-only, and a database trigger refuses any UPDATE or
    DELETE (migration 0008). ``actor`` keeps no foreign-key constraint, so deleting a user leaves
    their events (and ``actor_name``, the name at the time) as they were."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, help_text="The user's name then, or the process.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="auditevent_object_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
