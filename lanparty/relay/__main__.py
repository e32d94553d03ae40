"""``python -m lanparty.relay``."""

import sys

from lanparty.relay.cli import main

sys.exit(main())
