"""The grammar itself: LALR without conflicts, shipped as package data."""

from __future__ import annotations

import logging
from importlib import resources

from lark import Lark, logger

from irqlab.dsl.syntax import grammar_text


def test_grammar_is_package_data():
    """scn.lark is found through importlib.resources."""
    assert resources.files("irqlab.dsl").joinpath("scn.lark").is_file()


def test_grammar_has_no_conflicts(caplog):
    """The LALR table builds without shift/reduce conflicts (reduce/reduce would raise)."""
    logger.propagate = True
    with caplog.at_level(logging.DEBUG, logger="lark"):
        Lark(grammar_text(), parser="lalr", lexer="contextual", start=["start", "expression"], debug=True)
    assert not [r.getMessage() for r in caplog.records if "conflict" in r.getMessage().lower()]
