"""gunicorn entry point for the Keystone peer (imported by the Keystone venv's Python).

Keystone's configuration library parses the whole sys.argv, which under gunicorn
still holds gunicorn's own options, so every worker would exit with
"unrecognized arguments". Keeping only the program name fixes that; the
configuration files come from OS_KEYSTONE_CONFIG_FILES.
"""

import sys

del sys.argv[1:]

from keystone.wsgi.api import application  # noqa: E402

__all__ = ["application"]
