"""``python -m drop_core``: see :mod:`drop_core.cli`."""
import sys

from drop_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
