"""Template pages of labeling: ``rate`` (raters: the queue list, profile, judging page),
``judging_form`` (the judging page's form in and out), ``chat`` (trainers' conversations with a
model, ranked turn by turn through the same form reader), ``manage`` (the queue pages of admins and
researchers: list, dashboards, new queue, and running a queue) with its forms in ``queue_forms``."""
