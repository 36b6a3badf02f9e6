"""`python -m amili_async` is the `amili-async` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
