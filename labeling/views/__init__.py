"""Template pages of labeling: ``rate`` (raters: the queue list, profile, judging page),
``judging_form`` (the judging page's form in and out), ``manage`` (the queue pages of admins and
researchers: list, dashboards, new queue, and running a queue) with its forms in ``queue_forms``."""
