"""minigate load benchmark (GitHub issue 6). Run ``python -m bench run --help``.

Never imported by the pytest suite except to check argument parsing; nothing here is timed
inside tests.
"""
