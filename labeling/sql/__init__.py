"""The hand-written SQL of the rater loop: the few statements every judgment runs.

Building a ``select_related`` query or a multi-statement write costs the ORM more CPU than the
database spends running it, and on the rater loop (token, gatekeepers, claim, submit) that cost
was the largest share of a judgment's server time. So these statements are written by hand,
once, in ``labeling.sql.statements``, from the models' own column lists (a new field is picked up
without touching the SQL), with named parameters; their rows are turned into model instances by
``labeling.sql.hydrate`` exactly as a queryset would. Everything else stays on the ORM.

The statements whose names start with ``pg_`` exist on PostgreSQL only; on SQLite the callers
run the same steps through the ORM. ``tests/labeling/test_sql.py`` checks every statement
against the ORM, field by field, on both databases, and fails if a model these statements write
gains a ``save()`` override or a signal receiver (which a hand-written write would skip).
"""
