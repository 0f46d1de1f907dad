"""``python -m iso15118``: same as the ``iso15118`` command."""

import sys

from iso15118.cli import main

if __name__ == "__main__":
    sys.exit(main())
