#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
    if sys.argv[1:2] == ["demo"]:
        # The demo is one person on one machine over plain HTTP (runserver): debug on, unless
        # DJANGO_DEBUG says otherwise. Settings read it once, so it is set before they load; the
        # demo's worker inherits it, and the command says so when it starts.
        os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
