"""Named parameters, expressions and dotted paths: from a lowered scenario to a
resolved one (no :class:`~irqlab.ir.Expr` left), with overrides applied.

Interface (pure Python, no numpy):

``paths(scenario) -> dict[str, PathInfo]``
    every sweepable value by canonical dotted path (see :mod:`irqlab.ir`),
    with its current value, its kind (``number``/``time``/``frequency``/
    ``choice``/``bool``), the allowed choices, and its span.

``canonical_path(scenario, path, span=None) -> str``
    the canonical form of a user-written path (accepting shorthands such as
    ``qemu_eoi_throttle.threshold`` or a bare named parameter ``rate``); a
    ScenarioError with a did-you-mean at ``span`` if it names nothing.

``evaluate(expr, env) -> Quantity | str | bool``
    evaluate an expression with units (``env``: name -> value); a
    ScenarioError at the offending node's span on a dimension clash or an
    unknown name.

``resolve(scenario, overrides=None) -> Scenario``
    apply ``{path: value}`` overrides (values as Quantity/str/bool/int/float,
    or text to parse such as ``"10ms"``), evaluate named parameters and every
    expression, check each value against its declared type and range, and
    return the resolved scenario.
"""
