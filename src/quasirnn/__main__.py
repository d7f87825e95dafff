"""``python -m quasirnn``: the ``quasirnn`` command (:func:`quasirnn.cli.main.main`)."""

import sys

from quasirnn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
