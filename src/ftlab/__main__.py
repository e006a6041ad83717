import sys

from ftlab.cli import main

sys.exit(main())
