import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("comparisons", "0002_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ComparisonDuplicate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "candidate",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="comparisons.candidate",
                    ),
                ),
                (
                    "comparison",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="duplicates",
                        to="comparisons.comparison",
                    ),
                ),
                (
                    "kept",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="comparisons.candidate",
                    ),
                ),
            ],
            options={
                "ordering": ["comparison_id", "kept_id", "candidate_id"],
                "constraints": [
                    models.UniqueConstraint(fields=("comparison", "candidate"), name="compdup_unique"),
                    models.CheckConstraint(
                        condition=models.Q(("candidate", models.F("kept")), _negated=True),
                        name="compdup_not_its_own_copy",
                    ),
                ],
            },
        ),
    ]
