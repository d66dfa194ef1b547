"""What the reference interpreter's modules share (:mod:`irqlab.engine.reference` and its
mixins)."""

from __future__ import annotations

import numpy as np

ONE = np.zeros(1, dtype=np.int64)  # the lane array a plugin sees here: [0]
