"""The scenario language: ``.scn`` text -> parse tree -> :class:`irqlab.ir.Scenario`.

    tree = parse(text, filename)          # a lark.Tree (syntax errors: ScenarioError)
    scn  = lower(tree, filename, text)    # the IR, every semantic check run
    scn  = loads(text, filename)          # both at once (the fast path)
    scn  = load(path)                     # from a file; imports relative to it
    text = format_source(text, filename)  # canonical formatting (comments kept)

The grammar is ``irqlab/dsl/scn.lark`` (LALR, contextual lexer). The modules
are imported on first use so that ``import irqlab.dsl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import lark

    from irqlab.ir import Scenario

__all__ = ["parse", "lower", "loads", "load", "load_all", "format_source"]


def parse(text: str, filename: str = "<string>") -> "lark.Tree":
    """The parse tree of ``text``; a ScenarioError located at the first syntax error."""
    from irqlab.dsl.syntax import parse_tree

    return parse_tree(text, filename)


def lower(tree: "lark.Tree", filename: str = "<string>", text: str = "") -> "Scenario":
    """The scenario a parse tree describes (its file's last ``scenario`` block),
    after every semantic check; imports are read relative to ``filename``."""
    from irqlab.dsl.lowering import lower_tree

    return lower_tree(tree, filename, text)


def loads(text: str, filename: str = "<string>") -> "Scenario":
    """Parse and lower ``text`` (the fast path: no intermediate tree)."""
    from irqlab.dsl.lowering import lower_text

    return lower_text(text, filename)


def load(path: Any) -> "Scenario":
    """Read, parse and lower the file at ``path``."""
    from irqlab.dsl.lowering import load_file

    return load_file(str(path))


def load_all(path: Any) -> "dict[str, Scenario]":
    """Every scenario defined in the file at ``path``, by name, in file order."""
    from irqlab.dsl.lowering import load_file_all

    return load_file_all(str(path))


def format_source(text: str, filename: str = "<string>") -> str:
    """``text`` in canonical layout (comments kept); raises ScenarioError on a syntax error."""
    from irqlab.dsl.fmt import format_text

    return format_text(text, filename)
