"""Lets `python -m cairn` behave like the `cairn` console script (tests use it to start members)."""

from cairn.cli.main import main

raise SystemExit(main())
