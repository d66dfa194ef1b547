"""irqlab's built-in plugins, registered through the ``irqlab.plugins`` entry points."""
