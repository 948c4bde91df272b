"""`python -m kafkabench.cli`: the `kafkabench` command."""

import sys

from kafkabench.cli import main

if __name__ == "__main__":
    sys.exit(main())
