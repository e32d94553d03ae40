"""``python -m lanparty.gateway IFACE``."""

import sys

from lanparty.gateway.cli import main

sys.exit(main())
