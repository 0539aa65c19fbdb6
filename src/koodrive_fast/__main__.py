"""``python -m koodrive_fast`` runs the ``koodrive-fast`` command line."""

import sys

from ._cli import main

sys.exit(main())
