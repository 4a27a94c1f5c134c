import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task
def assignments_expire_task() -> int:
    """Periodic (Celery beat): release leases whose time ran out."""
    from labeling.services import assignments_expire

    return assignments_expire()


@shared_task
def queues_reprioritize_task() -> int:
    """Periodic (Celery beat): refresh the uncertainty order of active adaptive queues.

    Submissions already reorder the pairs of the prompt they judged; this catches everything else
    (new items, expired leases, judgments deleted by an admin).
    """
    from labeling.models import Queue
    from labeling.services import queue_reprioritize

    changed = 0
    for queue in Queue.objects.filter(pairing=Queue.Pairing.ADAPTIVE, status=Queue.Status.ACTIVE):
        changed += queue_reprioritize(queue=queue)
    return changed


@shared_task
def queue_stats_refresh_task() -> int:
    """Periodic (Celery beat, on ``default``): compute the statistics of active queues whose cached
    answer is out of date, so their dashboards and ``stats/`` answer from the cache."""
    from labeling.selectors.queue_stats import queue_stats_refresh_active
    from labeling.services.stats_facts import judgment_facts_fold_all

    # Fold the new judgments in first, so the figures computed read stored facts.
    judgment_facts_fold_all()
    return queue_stats_refresh_active()


@shared_task
def judgment_facts_fold_task() -> int:
    """Periodic (Celery beat, on ``default``): fold every queue's new judgments into the queue
    statistics' stored facts (``labeling.services.stats_facts``); returns the facts added."""
    from labeling.services.stats_facts import judgment_facts_fold_all

    return judgment_facts_fold_all()


@shared_task
def redteam_safe_replies_build_task() -> int:
    """Periodic (Celery beat, on ``default``): give the ranking queues of safe-reply requests the
    items of their finished generation jobs (``labeling.services.redteam_safe_replies``)."""
    from labeling.services.redteam_safe_replies import attack_safe_replies_build

    return attack_safe_replies_build()


# Routed to the ``interactive`` queue (CELERY_TASK_ROUTES). acks_late: a killed worker's turn is
# redelivered, and taken again once stale (``turns_claim``); its candidates' unique key means a
# redelivered turn writes nothing twice.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def session_turn_generate_task(self: Any, turn_id: int) -> int:
    """Make a conversation turn's alternatives (with other turns waiting at the same time). Run
    eagerly, inside the request that asked, it does not wait for other trainers' turns."""
    from labeling.services.session_generation import turns_generate

    return turns_generate(turn_id=turn_id, gather=not self.request.is_eager)


@worker_ready.connect
def _resume_turns(sender: Any = None, **kwargs: Any) -> None:
    """A starting worker that serves the turns' queue (``interactive``, as routed) asks again for the
    turns left waiting (a filesystem broker forgets a message its dead worker took; any broker's
    worker may die mid-turn)."""
    if sender is None:
        return
    queues = {q.name for q in getattr(sender.task_consumer, "queues", [])} if sender.task_consumer else set()
    routed = sender.app.amqp.router.route({}, session_turn_generate_task.name)["queue"].name
    if queues and routed not in queues:
        return
    from django.db import transaction

    from labeling.services.session_generation import turns_resume_all

    with transaction.atomic():
        count = turns_resume_all()
    if count:
        logger.info("re-enqueued %d conversation turn(s) after a worker start", count)


# Routed to ``gpu`` (CELERY_TASK_ROUTES; the start sends it to the models' own queue when both share
# one): the attacker and the target are models. acks_late: a killed worker's run is redelivered and
# resumes; each exchange is stored whole under the job's lock, so nothing is stored twice.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def adversary_job_run_task(self: Any, job_id: int) -> int:
    """Make an adversary job's missing exchanges (attack prompt, target reply, pending attack)."""
    from labeling.models import AdversaryJob
    from labeling.services.adversary import FINISHED
    from labeling.services.adversary_run import adversary_job_run

    job = AdversaryJob.objects.filter(pk=job_id).select_related("attacker", "target", "queue").first()
    if job is None or job.status in FINISHED:
        return 0
    return adversary_job_run(job=job)


# Routed like the adversary's run; acks_late: redelivered after a killed worker, and the attempts'
# unique key (run, test attack) means a second run writes nothing twice.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def redteam_eval_run_task(self: Any, run_id: int) -> int:
    """Answer a test-set run's test attacks that have no attempt yet."""
    from labeling.models import RedteamEvalRun
    from labeling.services.redteam_eval import STOPPED, redteam_eval_run

    run = RedteamEvalRun.objects.filter(pk=run_id).select_related("generator", "queue").first()
    if run is None or run.status in STOPPED:
        return 0
    return redteam_eval_run(run=run)


@worker_ready.connect
def _resume_redteam_runs(sender: Any = None, **kwargs: Any) -> None:
    """A starting ``gpu`` worker on the filesystem broker enqueues the unfinished adversary jobs and
    test-set runs again (``model_runner.tasks.gpu_worker_on_filesystem_broker``)."""
    from model_runner.tasks import gpu_worker_on_filesystem_broker

    if not gpu_worker_on_filesystem_broker(sender):
        return
    from django.db import transaction

    from labeling.services.adversary import adversary_jobs_resume_all
    from labeling.services.redteam_eval import redteam_eval_runs_resume_all

    with transaction.atomic():
        count = adversary_jobs_resume_all() + redteam_eval_runs_resume_all()
    if count:
        logger.info("re-enqueued %d adversary job(s) and test-set run(s) after a worker start", count)
