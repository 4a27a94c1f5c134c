"""The shape of ``GET /api/v1/queues/{id}/stats/`` for the OpenAPI schema (docs/api.md defines
each measure). The view returns the selectors' dictionaries as they are; these serializers only
describe them."""

from __future__ import annotations

from rest_framework import serializers


class StatsFigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="null when the measure does not apply")
    ci95 = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="bootstrap 95% interval (2.5th and 97.5th percentiles, items resampled)",
    )
    items = serializers.IntegerField(help_text="items (units) answered by two or more raters")
    reason = serializers.CharField(required=False, help_text="why the value is null")
    level = serializers.CharField(required=False, help_text="Krippendorff's alpha: nominal or ordinal")


class StatsCriterionSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField(help_text="overall, overall_direction, preference, likert or flag")
    question = serializers.CharField()
    level = serializers.CharField()
    percent_agreement = StatsFigureSerializer()
    cohen_kappa = StatsFigureSerializer()
    fleiss_kappa = StatsFigureSerializer()
    krippendorff_alpha = StatsFigureSerializer()


class StatsAgreementSerializer(serializers.Serializer):
    bootstrap_rounds = serializers.IntegerField()
    bootstrap_seed = serializers.IntegerField()
    criteria = StatsCriterionSerializer(many=True)


class StatsSidesSerializer(serializers.Serializer):
    pair_judgments = serializers.IntegerField()
    left_wins = serializers.IntegerField(help_text="preference < 0: the response shown first won")
    right_wins = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField(help_text="ties flagged both_bad")
    left_share = serializers.FloatField(allow_null=True, help_text="left wins / (left + right wins)")
    p_value = serializers.FloatField(allow_null=True, help_text="exact two-sided binomial test, p = 1/2")
    tie_rate = serializers.FloatField(allow_null=True, help_text="ties / pair judgments")
    both_bad_rate = serializers.FloatField(allow_null=True, help_text="both_bad / pair judgments")


class StatsRaterSidesSerializer(StatsSidesSerializer):
    rater = serializers.CharField()


class StatsPositionBiasSerializer(StatsSidesSerializer):
    raters = StatsRaterSidesSerializer(many=True)


class StatsRatesSerializer(serializers.Serializer):
    judgments = serializers.IntegerField()
    pair_judgments = serializers.IntegerField()
    tie_rate = serializers.FloatField(allow_null=True)
    both_bad_rate = serializers.FloatField(allow_null=True)
    skips = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True, help_text="skips / (judgments + skips)")
    median_active_seconds = serializers.FloatField(allow_null=True)


class StatsFlagSerializer(serializers.Serializer):
    flag = serializers.ChoiceField(choices=["implausibly_fast", "same_side", "low_agreement"])
    evidence = serializers.DictField(help_text="the figures and the threshold behind the flag")


class StatsRaterSerializer(serializers.Serializer):
    rater = serializers.CharField()
    judgments = serializers.IntegerField()
    skips = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)
    median_active_seconds = serializers.FloatField(allow_null=True)
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_answered = serializers.IntegerField()
    pairwise_agreement = serializers.FloatField(
        allow_null=True, help_text="pairwise agreement with other raters (same direction, ties agree)"
    )
    pairwise_agreement_pairs = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True, help_text="deprecated name of pairwise_agreement")
    side_bias = StatsSidesSerializer()
    flags = StatsFlagSerializer(many=True)


class StatsThroughputSerializer(serializers.Serializer):
    hour = serializers.DateTimeField()
    n = serializers.IntegerField()


class QueueStatsSerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField(
        help_text="when these figures were computed (the answer is cached until the queue changes)"
    )
    progress = serializers.DictField()
    throughput = StatsThroughputSerializer(many=True)
    overall_agreement = serializers.FloatField(
        allow_null=True, help_text="pairwise agreement with other raters, over all rater pairs"
    )
    agreement_pairs = serializers.IntegerField()
    raters = StatsRaterSerializer(many=True)
    agreement = StatsAgreementSerializer()
    position_bias = StatsPositionBiasSerializer()
    rates = StatsRatesSerializer()
