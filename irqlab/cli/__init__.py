"""The ``irqlab`` command: thin wrappers that call the pipeline's stages.

Each command group lives in its own module (``lang``, ``sim``, ``sweep``,
``store``, ``plugins``) and registers itself on :data:`irqlab.cli.main.cli`.
"""
