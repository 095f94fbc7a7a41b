import sys

from fmeval.cli import main

sys.exit(main())
