"""The export page's "Reward check" button: queue a reward-model check of one finished run (the
same service as ``POST /api/v1/exports/{id}/reward-check/``), then show its row, which reports the
check's progress and results."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from export.selectors.reward_pairs import known_pairs_upload_read
from export.selectors.runs import export_run_get
from export.services.reward_checks import reward_check_create
from export.views.exports import _require_export
from labeling.errors import ApplicationError


@login_required
@require_POST
def export_reward_check(request: HttpRequest, export_run_id: int) -> HttpResponse:
    user = _require_export(request)
    export_run = export_run_get(export_run_id=export_run_id)
    upload = request.FILES.get("known_pairs")
    try:
        known = known_pairs_upload_read(upload) if upload is not None else ""
        check = reward_check_create(export_run=export_run, created_by=user, known_pairs=known)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Reward check {check.pk} of export {export_run.pk} was queued on the gpu queue; "
            "its row below shows its progress and, once done, its accuracies.",
        )
    return redirect(f"{reverse('export-page')}?run={export_run.pk}#run-{export_run.pk}")
