from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the production settings check (manage.py check --deploy).
        from labeling import security  # noqa: F401

        self._connect_audit_log()

    def _connect_audit_log(self) -> None:
        """The audit log's store and the signals it records (``labeling.services.audit``)."""
        from axes.models import AccessAttempt
        from axes.signals import user_locked_out
        from django.contrib import admin
        from django.contrib.admin.models import LogEntry
        from django.contrib.auth import signals as auth_signals
        from django.db.models.signals import post_delete, post_save

        from labeling.audit import audit_recorded
        from labeling.services import audit

        audit_recorded.connect(audit.on_audit_recorded, dispatch_uid="preflab-audit-store")
        auth_signals.user_logged_in.connect(audit.on_user_logged_in, dispatch_uid="preflab-audit-login")
        auth_signals.user_logged_out.connect(audit.on_user_logged_out, dispatch_uid="preflab-audit-logout")
        auth_signals.user_login_failed.connect(
            audit.on_user_login_failed, dispatch_uid="preflab-audit-failed"
        )
        user_locked_out.connect(audit.on_user_locked_out, dispatch_uid="preflab-audit-lockout")
        post_delete.connect(
            audit.on_access_attempt_deleted, sender=AccessAttempt, dispatch_uid="preflab-unlock"
        )
        post_save.connect(audit.on_log_entry_saved, sender=LogEntry, dispatch_uid="preflab-audit-admin")
        admin.site.add_action(audit.audited_delete_selected, "delete_selected")
