"""Template pages of labeling: ``rate`` (raters: the queue list, profile, judging page),
``judging_form`` (the judging page's form in and out), ``manage`` (admin queue dashboards)."""
