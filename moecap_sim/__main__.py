import sys

from moecap_sim.cli import main

sys.exit(main())
