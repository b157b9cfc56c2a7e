"""`python -m proxy` is the `iapo` command."""

from proxy.cli import main

raise SystemExit(main())
