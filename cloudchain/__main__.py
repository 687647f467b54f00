import sys

from cloudchain.cli.main import main

sys.exit(main())
