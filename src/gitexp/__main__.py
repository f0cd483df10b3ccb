import sys

from gitexp.cli import main

sys.exit(main())
