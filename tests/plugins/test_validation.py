"""A plugin is validated when it registers: each broken rule makes it 'broken' with the reason."""

from __future__ import annotations

import pytest

from irqlab.plugins.api import Column, HandlerPolicy, Metric, Mitigation, Param, Step
from irqlab.plugins.registry import Registry


def broken_reason(cls) -> str:
    """Register ``cls`` in an empty registry; the reason it is broken (fails if it is not)."""
    entry = Registry().add_class(cls)
    assert entry.status == "broken", f"{cls.__name__} registered as {entry.status}"
    assert entry.cls is None
    return entry.reason


class Good(Mitigation):
    """A valid mitigation the broken ones below derive from."""

    name = "good"
    version = "1.0"
    params = (Param("rate", "frequency", 1000.0, "per second", min=1.0),
              Param("mode", "choice", "a", "a mode", choices=("a", "b")))
    hooks = frozenset({"ioapic_eoi"})

    def on_ioapic_eoi(self, ctx, ev):
        pass


def test_a_valid_plugin_registers_ok():
    """The baseline: Good registers with status ok, its class kept."""
    entry = Registry().add_class(Good)
    assert (entry.status, entry.cls, entry.kind, entry.name) == ("ok", Good, "mitigation", "good")


def test_missing_docstring():
    """A plugin without a docstring has no documentation: broken."""
    class NoDoc(Good):
        pass

    NoDoc.__doc__ = None
    assert "needs a docstring" in broken_reason(NoDoc)


def test_bad_param_type():
    """A parameter type outside PARAM_TYPES is named in the reason."""
    class BadType(Good):
        """Declares a 'duration' parameter type."""
        params = (Param("x", "duration", 1.0),)

    assert "parameter 'x': type 'duration' is not one of" in broken_reason(BadType)


def test_hook_declared_but_not_defined():
    """Declaring the 'deliver' hook without on_deliver is broken."""
    class NoHook(Good):
        """Declares deliver, defines only on_ioapic_eoi."""
        hooks = frozenset({"ioapic_eoi", "deliver"})

    assert broken_reason(NoHook) == "declares hook 'deliver' but does not define on_deliver"


def test_hook_defined_but_not_declared():
    """Defining on_redirect without declaring it would silently never run: broken."""
    class Undeclared(Good):
        """Defines on_redirect but does not declare it."""

        def on_redirect(self, ctx, ev):
            pass

    assert "defines on_redirect but does not declare hook 'redirect'" in broken_reason(Undeclared)


def test_unknown_hook():
    """A hook name that the engine does not call."""
    class Unknown(Good):
        """Declares a hook that does not exist."""
        hooks = frozenset({"ioapic_eoi", "on_eoi"})

    assert "unknown hooks ['on_eoi']" in broken_reason(Unknown)


def test_timers_need_the_timer_hook():
    """Owning timers without on_timer: the timers would expire into nothing."""
    class Timers(Good):
        """Owns a timer, no timer hook."""
        timers = 1

    assert "owns timers but does not declare the 'timer' hook" in broken_reason(Timers)


def test_policy_program_must_end_in_return():
    """A handler program without RETURN is broken, with the site it failed for."""
    class NoReturn(HandlerPolicy):
        """Forgets to return from the handler."""
        name = "no_return"
        version = "1"

        def program(self, site):
            return (Step("EOI"),) if site.serviced_locally else (Step("EOI"), Step("FORWARD"))

    assert "must end with RETURN" in broken_reason(NoReturn)


def test_policy_program_waits_on_an_undeclared_time():
    """A step's 'before' must be a declared time parameter or a cost."""
    class Waits(HandlerPolicy):
        """Waits on a parameter it does not declare."""
        name = "waits"
        version = "1"

        def program(self, site):
            return (Step("EOI", "body"), Step("RETURN"))

    assert "step waits on 'body', which is not a time parameter" in broken_reason(Waits)


def test_policy_program_that_raises():
    """A program() that raises for some site is broken at registration, not at first use."""
    class Raises(HandlerPolicy):
        """Only knows nested sites."""
        name = "raises"
        version = "1"

        def program(self, site):
            if site.serviced_locally:
                raise KeyError("local")
            return (Step("FORWARD"), Step("RETURN"))

    assert "raised KeyError" in broken_reason(Raises)


def test_bad_choice_default():
    """A choice default that is not one of the choices."""
    class BadChoice(Good):
        """Its mode defaults to 'c'."""
        params = (Param("mode", "choice", "c", "a mode", choices=("a", "b")),)

    assert "default 'c' is not one of its choices a, b" in broken_reason(BadChoice)


def test_numeric_default_outside_its_range():
    """A default below the declared minimum."""
    class Low(Good):
        """Rate defaults to 0 with min 1."""
        params = (Param("rate", "frequency", 0.0, "per second", min=1.0),)

    assert "default 0.0 is outside its range [1.0, inf]" in broken_reason(Low)


def test_default_of_the_wrong_type():
    """A string default for an int parameter."""
    class Str(Good):
        """Its count defaults to a string."""
        params = (Param("count", "int", "ten"),)

    assert "default 'ten' is not a number" in broken_reason(Str)


def test_int_default_must_be_whole():
    """2.5 for an int parameter."""
    class Half(Good):
        """Its count defaults to 2.5."""
        params = (Param("count", "int", 2.5),)

    assert "is not a whole number" in broken_reason(Half)


def test_time_default_naming_an_unknown_cost():
    """A time default 'costs.X' must name a cost."""
    class Cost(Good):
        """Defaults to a cost that does not exist."""
        params = (Param("t", "time", "costs.nope"),)

    assert "default 'costs.nope' names no cost" in broken_reason(Cost)


def test_range_on_a_non_numeric_parameter():
    """min on a bool parameter means nothing."""
    class BoolMin(Good):
        """A bool with a minimum."""
        params = (Param("on", "bool", False, min=0),)

    assert "only numeric parameters have a range" in broken_reason(BoolMin)


def test_parameter_declared_twice():
    """Two parameters with one name."""
    class Twice(Good):
        """Declares rate twice."""
        params = (Param("rate", "float", 1.0), Param("rate", "float", 2.0))

    assert "parameter 'rate' is declared twice" in broken_reason(Twice)


def test_name_must_be_an_identifier():
    """A name a .scn file could not spell."""
    class Dashed(Good):
        """Named with a dash."""
        name = "token-bucket"

    assert "is not an identifier" in broken_reason(Dashed)


def test_metric_needs_columns():
    """A metric that declares no columns adds nothing to the results."""
    class NoCols(Metric):
        """Computes nothing."""
        name = "nocols"
        version = "1"

        def compute(self, view):
            return {}

    assert "must declare its columns" in broken_reason(NoCols)


def test_metric_column_type():
    """A column type the results schema does not have."""
    class StrCol(Metric):
        """A text column."""
        name = "strcol"
        version = "1"
        columns = (Column("label", "str"),)

        def compute(self, view):
            return {}

    assert "column 'label': type 'str' is not int, float or bool" in broken_reason(StrCol)


def test_required_method_missing():
    """A device model without on_service cannot run."""
    from irqlab.plugins.api import DeviceModel

    class Half(DeviceModel):
        """Raises the line, never services."""
        name = "half"
        version = "1"

        def on_arrival(self, ctx, lanes):
            return lanes >= 0

    assert "must define on_service()" in broken_reason(Half)


def test_not_a_plugin_class():
    """An entry point that loads something other than a Plugin subclass."""
    assert "is not a subclass of irqlab.plugins.api.Plugin" in broken_reason(dict)


@pytest.mark.parametrize("kind", ["policy", "mitigation", "device", "arrival", "metric", "backend"])
def test_every_builtin_validates(fresh_registry, kind):
    """Every built-in of each kind registers ok, from the irqlab distribution's entry points."""
    entries = [e for e in fresh_registry.entries() if e.kind == kind and e.dist == "irqlab"]
    assert entries and all(e.status == "ok" for e in entries), [(e.name, e.reason) for e in entries]


def test_hook_with_a_wrong_signature():
    """on_ioapic_eoi(self, ev) cannot take (ctx, ev): broken at registration, not at the first EOI."""
    class NoCtx(Good):
        """Forgets ctx."""

        def on_ioapic_eoi(self, ev):
            pass

    assert broken_reason(NoCtx).startswith("on_ioapic_eoi(self, ev) cannot be called as "
                                           "on_ioapic_eoi(self, ctx, ev)")


def test_arrival_next_with_a_wrong_signature():
    """next(self, ctx, lanes) without 'now'."""
    from irqlab.plugins.api import ArrivalProcess

    class NoNow(ArrivalProcess):
        """Forgets now."""
        name, version = "nonow", "1"

        def first(self, ctx, lanes):
            return lanes

        def next(self, ctx, lanes):
            return lanes

    assert "next(self, ctx, lanes) cannot be called as next(self, ctx, lanes, now)" in broken_reason(NoNow)


def test_constructor_must_accept_config_and_label():
    """An __init__ that takes no config cannot be built by the compiler."""
    class Init(Good):
        """Overrides __init__ badly."""

        def __init__(self):
            super().__init__({})

    assert "__init__(self) cannot be called as __init__(self, config, label=...)" in broken_reason(Init)


def test_check_must_stay_a_classmethod():
    """check defined as an instance method would be called without an instance."""
    class Check(Good):
        """check without @classmethod."""

        def check(self, site):
            return ()

    assert broken_reason(Check) == "check must be a classmethod: check(cls, site)"
