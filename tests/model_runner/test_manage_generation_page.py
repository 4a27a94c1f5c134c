from __future__ import annotations

import pytest

from model_runner.models import GenerationJob, Generator
from tests.factories import GenerationJobFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

URL = "/manage/generation/"


def test_admin_sees_jobs_and_the_page_refreshes_while_one_runs(client, admin_user):
    client.force_login(admin_user)
    running = GenerationJobFactory.create(status=GenerationJob.Status.RUNNING, total=8, done=2, errors=[])
    failed = GenerationJobFactory.create(
        status=GenerationJob.Status.FAILED,
        total=4,
        done=2,
        errors=[{"prompt_id": 7, "generator": "m", "error": "<b>prompt is too long</b>"}],
    )

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-active="1"' in html  # the page's script refreshes the jobs table
    assert 'http-equiv="refresh"' in html  # inside <noscript>, for browsers without scripts
    assert f'id="job-{running.pk}"' in html and f'id="job-{failed.pk}"' in html
    assert "2 / 8" in html
    assert 'max="100" value="25"' in html  # the job's <progress>
    # Error text is shown escaped, never as markup.
    assert "&lt;b&gt;prompt is too long&lt;/b&gt;" in html
    assert "<b>prompt is too long</b>" not in html


def test_no_refresh_when_every_job_has_finished(client, admin_user):
    client.force_login(admin_user)
    GenerationJobFactory.create(status=GenerationJob.Status.SUCCEEDED, total=2, done=2)
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'http-equiv="refresh"' not in html and 'data-active="0"' in html


def test_raters_are_refused_and_anonymous_users_sent_to_login(client, rater):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    client.force_login(rater)
    assert client.get(URL).status_code == 403


def _start(client, **fields):
    form = {"prompts_by": "all", "samples_per_prompt": 4, "batch_size": 16, **fields}
    return client.post(URL, form)


def test_admin_starts_a_job_from_the_page(client, admin_user):
    client.force_login(admin_user)
    tagged = PromptFactory.create_batch(3, tags=["math"])
    PromptFactory.create(tags=["chat"])
    local = GeneratorFactory.create(
        name="local-gguf", backend=Generator.Backend.TRANSFORMERS, model_path="/m"
    )

    page = client.get(URL).content.decode()
    assert 'id="job-form"' in page
    assert "local-gguf (transformers)" in page
    assert "smollm2-135m-instruct (bundled)" in page  # offered before its row exists

    response = _start(
        client,
        prompts_by="tags",
        tags="math, algebra",
        generators=[str(local.pk), "bundled"],
        samples_per_prompt=2,
        max_new_tokens=64,
        seed=7,
        batch_size=2,
    )

    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert sorted(p.pk for p in job.prompts.all()) == sorted(p.pk for p in tagged)
    assert sorted(g.name for g in job.generators.all()) == ["local-gguf", "smollm2-135m-instruct"]
    assert (job.samples_per_prompt, job.batch_size, job.total) == (2, 2, 12)
    assert job.sampling == {"max_new_tokens": 64, "seed": 7}
    assert job.created_by == admin_user
    followed = client.get(URL).content.decode()
    assert f"Generation job {job.pk} started: 12 candidates to make." in followed
    assert f'id="job-{job.pk}"' in followed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompts_by": "tags", "tags": " , "}, "Give at least one tag."),
        ({"prompts_by": "tags", "tags": "nope"}, "tags: no prompt has the tag &quot;nope&quot;"),
        (
            {"prompts_by": "ids", "ids": "999999, ext-404"},
            "prompts: unknown prompt ids: 999999, &quot;ext-404&quot;",
        ),
        ({"prompts_by": "collection"}, "Choose a collection."),
        ({"samples_per_prompt": 17}, "Ensure this value is less than or equal to 16."),
        ({"temperature": 11}, "Ensure this value is less than or equal to 10."),
        ({}, "This field is required."),  # no generator ticked
    ],
)
def test_bad_choices_are_named_on_the_form_and_nothing_starts(client, admin_user, fields, message):
    client.force_login(admin_user)
    PromptFactory.create(tags=["math"])
    response = _start(client, **({"generators": ["bundled"]} | fields if fields else {}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_generators_that_cannot_generate_are_not_offered(client, admin_user):
    client.force_login(admin_user)
    PromptFactory.create()
    imported = GeneratorFactory.create(name="from-elsewhere", backend=Generator.Backend.IMPORTED)
    GeneratorFactory.create(
        name="retired", backend=Generator.Backend.TRANSFORMERS, model_path="/m", is_active=False
    )
    page = client.get(URL).content.decode()
    assert "from-elsewhere" not in page and "retired" not in page
    response = _start(client, generators=[str(imported.pk)])
    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_the_jobs_table_alone_for_the_page_refresh(client, admin_user):
    client.force_login(admin_user)
    running = GenerationJobFactory.create(status=GenerationJob.Status.RUNNING, total=8, done=6, errors=[])
    fragment = client.get(URL + "?fragment=jobs").content.decode()
    assert fragment.startswith('<section id="jobs"') and 'data-active="1"' in fragment
    assert f'id="job-{running.pk}"' in fragment and "6 / 8" in fragment
    assert 'id="job-form"' not in fragment
    running.status = GenerationJob.Status.SUCCEEDED
    running.save()
    assert 'data-active="0"' in client.get(URL + "?fragment=jobs").content.decode()


def test_jobs_are_not_added_in_the_django_admin(client, admin_user):
    """A job saved there would have no batches and never run."""
    client.force_login(admin_user)
    assert client.get("/admin/model_runner/generationjob/add/").status_code == 403


def test_after_a_start_the_form_shows_the_same_choice_again(client, admin_user):
    """A second click must make the same job, never one over every prompt."""
    client.force_login(admin_user)
    PromptFactory.create_batch(2, tags=["math"])
    PromptFactory.create(tags=["chat"])
    response = _start(
        client, prompts_by="tags", tags="math", generators=["bundled"], samples_per_prompt=2, seed=3
    )
    assert response.status_code == 302
    bundled = Generator.objects.get(name="smollm2-135m-instruct")

    page = client.get(URL).content.decode()
    assert 'value="tags" required id="id_prompts_by_1" checked' in page
    assert 'value="all" required id="id_prompts_by_0">' in page  # not "All prompts"
    assert 'name="tags" value="math"' in page
    assert f'name="generators" value="{bundled.pk}" id="id_generators_0" checked' in page
    assert 'name="samples_per_prompt" value="2"' in page and 'name="seed" value="3"' in page

    # Submitting the form as shown makes the same job again.
    again = _start(
        client, prompts_by="tags", tags="math", generators=[str(bundled.pk)], samples_per_prompt=2, seed=3
    )
    assert again.status_code == 302
    assert [job.prompts.count() for job in GenerationJob.objects.order_by("pk")] == [2, 2]


def test_a_job_over_the_limit_asks_first_and_starts_on_the_confirmation(client, admin_user, settings):
    settings.PREFLAB_CONFIRM_PROMPTS = 3
    client.force_login(admin_user)
    PromptFactory.create_batch(4)
    first = _start(client, generators=["bundled"], samples_per_prompt=2)
    assert first.status_code == 200
    html = first.content.decode()
    assert "Start a job over 4 prompts?" in html
    assert "4 prompts × 1 generator × 2 samples = <strong>8 candidates</strong>" in html
    assert 'name="confirm_prompts" value="4"' in html and "Yes, start it for 4 prompts" in html
    assert "data-focus-on-load" in html
    assert not GenerationJob.objects.exists()

    # The confirmation's own form sends the same fields again, plus the count agreed to.
    confirm_form = html.split('id="confirm"')[1].split("</form>")[0]
    assert (
        'name="prompts_by" value="all"' in confirm_form
        and 'name="generators" value="bundled"' in confirm_form
    )

    # A count that no longer matches (the choice changed meanwhile) is asked about again.
    PromptFactory.create()
    stale = _start(client, generators=["bundled"], samples_per_prompt=2, confirm_prompts=4)
    assert stale.status_code == 200 and "Start a job over 5 prompts?" in stale.content.decode()
    assert not GenerationJob.objects.exists()

    started = _start(client, generators=["bundled"], samples_per_prompt=2, confirm_prompts=5)
    assert started.status_code == 302
    job = GenerationJob.objects.get()
    assert (job.prompts.count(), job.total) == (5, 10)


def test_a_job_at_the_limit_or_with_confirmation_off_starts_at_once(client, admin_user, settings):
    client.force_login(admin_user)
    PromptFactory.create_batch(3)
    settings.PREFLAB_CONFIRM_PROMPTS = 3
    assert _start(client, generators=["bundled"]).status_code == 302
    settings.PREFLAB_CONFIRM_PROMPTS = 0
    PromptFactory.create_batch(5)
    bundled = Generator.objects.get(name="smollm2-135m-instruct")
    assert _start(client, generators=[str(bundled.pk)]).status_code == 302
    assert GenerationJob.objects.count() == 2


def test_form_errors_are_summed_up_and_described(client, admin_user):
    client.force_login(admin_user)
    PromptFactory.create()
    response = _start(client, generators=["bundled"], prompts_by="tags", tags="", temperature=11)
    assert response.status_code == 400
    html = response.content.decode()
    summary = html.split('class="error-summary"')[1].split("</div>")[0]
    assert 'href="#id_tags"' in summary and 'href="#id_temperature"' in summary
    assert 'aria-describedby="id_temperature_helptext id_temperature_error"' in html
    assert 'id="id_temperature_helptext"' in html and 'id="id_temperature_error"' in html
    # Radio buttons and checkbox lists are a group named by its legend, described the same way.
    assert "<legend>Choose by</legend>" in html
