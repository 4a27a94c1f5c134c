"""The labeling part of the HTTP API, one module per subject: ``accounts`` (tokens, users),
``rubrics``, ``queues`` (create, list, items, gold, statistics), ``queue_admin`` (run a queue:
status, settings, members) and ``assignments`` (the rater loop)."""
