import sys

from ganslim.cli import main

sys.exit(main())
