# The queue statistics' stored facts (labeling.models.stats): one narrow row per judgment, folded
# in by labeling.services.stats_facts; existing judgments are folded in by the first statistics
# read or beat's refresh, not here (a large database migrates in seconds).

import django.db.models.deletion
from django.db import migrations, models


def _store_chunks_uncompressed(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE labeling_judgmentfactchunk ALTER COLUMN data SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0011_redteam_wellbeing_tag_policies"),
    ]

    operations = [
        migrations.CreateModel(
            name="JudgmentFact",
            fields=[
                (
                    "judgment",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="fact",
                        serialize=False,
                        to="labeling.judgment",
                    ),
                ),
                ("item_id", models.BigIntegerField()),
                ("rater_id", models.BigIntegerField()),
                ("active", models.FloatField(null=True)),
                ("preference", models.SmallIntegerField(null=True)),
                ("swapped", models.SmallIntegerField(null=True)),
                ("created", models.FloatField()),
                ("both_bad", models.BooleanField(default=False)),
                ("answers", models.TextField(blank=True, default="")),
                ("chunk", models.IntegerField(default=0)),
                (
                    "queue",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="labeling.queue"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="JudgmentFactsState",
            fields=[
                (
                    "queue",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="labeling.queue",
                    ),
                ),
                ("folded_through", models.BigIntegerField(default=0)),
                ("chunks", models.IntegerField(default=0)),
                ("answer_keys", models.JSONField(blank=True, default=list)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.CreateModel(
            name="JudgmentFactChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.IntegerField()),
                ("rows", models.IntegerField()),
                ("data", models.BinaryField()),
                (
                    "queue",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="labeling.queue"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("queue", "number"), name="judgmentfactchunk_queue_number_unique"
                    )
                ],
            },
        ),
        # Packed floats do not compress: stored out of line as they are, read without inflating.
        migrations.RunPython(_store_chunks_uncompressed, migrations.RunPython.noop),
    ]
