import sys

from alloop.cli import main

sys.exit(main())
