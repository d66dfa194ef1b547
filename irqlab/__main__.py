"""``python -m irqlab``: the ``irqlab`` command, e.g. from a notebook's own Python."""

from irqlab.cli.main import entry

entry()
