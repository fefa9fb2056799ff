"""``python -m bastion``: the ``bastion`` command."""

from bastion.cli import main

raise SystemExit(main())
