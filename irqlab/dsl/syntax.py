"""Text -> statements: the Lark parser, its error messages, and the syntax tree.

Two parsers share the grammar (``scn.lark``): one builds a ``lark.Tree`` (for
``irqlab parse`` and the formatter), the other runs :class:`AstBuilder` inline
while parsing (the fast path of :func:`irqlab.dsl.loads`). Both give the same
statements (:class:`Stmt`, :class:`ParamStmt`, :class:`WhereStmt`) whose
values are :mod:`irqlab.ir` expression nodes with spans.

Syntax errors become a :class:`~irqlab.errors.ScenarioError` in the language's
own words: the expected-token sets Lark reports are mapped to phrases such as
"a value" or "'}'", never to raw terminal names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterator

import lark
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.parsers.lalr_interactive_parser import InteractiveParser

from irqlab.errors import ScenarioError, Span, collect
from irqlab.ir import Binary, Call, Expr, Name, Num, Quantity, Unary, Within as Near

MAX_BRACKETS = 32  # ( and [ nesting
MAX_BLOCKS = 16  # { nesting
MAX_OPERATORS = 100  # operators in one statement

_BINOPS = {"or_": "or", "and_": "and", "add": "+", "sub": "-", "mul": "*", "div": "/",
           "floordiv": "//", "mod": "%", "pow": "**"}

# --------------------------------------------------------------------------- syntax tree


@dataclass(slots=True)
class StrLit:
    """A quoted string (file names)."""

    value: str
    span: Span


@dataclass(slots=True)
class ListLit:
    """``[a, b, c]``"""

    items: list
    span: Span


@dataclass(slots=True)
class Range:
    """``low .. high flag*`` (a sample dimension)."""

    low: Any
    high: Any
    flags: list  # [(word, span)]
    span: Span


@dataclass(slots=True)
class Block:
    """``{ statements }``"""

    stmts: list
    span: Span


@dataclass(slots=True)
class Assign:
    """``= value``"""

    value: Any
    span: Span


@dataclass(slots=True)
class Within:
    """``in range`` or ``in [choices]``"""

    value: Any
    span: Span


@dataclass(slots=True)
class Compare:
    """``OP value`` after a head: ``livelock == true`` (an expectation)."""

    op: str
    value: Any
    span: Span


@dataclass(slots=True)
class Approx:
    """``within tolerance of target`` after a head (an expectation)."""

    tolerance: Any
    target: Any
    span: Span


@dataclass(slots=True)
class Stmt:
    """``head arg* [tail]``: the one shape of (almost) every statement."""

    head: str
    head_span: Span
    args: list
    tail: Any  # Block | Assign | Within | Compare | Approx | None
    span: Span

    @property
    def block(self) -> Block | None:
        return self.tail if isinstance(self.tail, Block) else None


@dataclass(slots=True)
class ParamStmt:
    """``param name = expression``"""

    name: str
    name_span: Span
    value: Any
    span: Span


@dataclass(slots=True)
class WhereStmt:
    """``where expression`` (a sweep constraint)."""

    expr: Any
    span: Span


@dataclass(slots=True)
class CheckStmt:
    """An expectation that starts with a call: ``fraction(livelock) >= 0.9``."""

    expr: Any
    span: Span


def span_of(x: Any) -> Span:
    return x.span


# --------------------------------------------------------------------------- building


class _Ctx(threading.local):
    file: str = "<string>"
    errors: list = []


_ctx = _Ctx()


_set = object.__setattr__


def _new(cls: type, **fields: Any) -> Any:
    """A frozen dataclass instance without its __init__ (the parser makes one per
    token). Only for classes whose every field is given here. Fields are set one by
    one, not through ``obj.__dict__``: touching ``__dict__`` makes each instance
    carry its own dict, a quarter more memory per statement on large files."""
    obj = object.__new__(cls)
    for k, v in fields.items():
        _set(obj, k, v)
    return obj


def _span(file: str, line: int, col: int, end_line: int, end_col: int) -> Span:
    return _new(Span, file=file, line=line, col=col, end_line=end_line, end_col=end_col)


def _tok_span(t: Token) -> Span:
    return _span(_ctx.file, t.line or 1, t.column or 1, t.end_line or t.line or 1,
                 t.end_column or (t.column or 1) + len(t))


def _join(a: Span, b: Span) -> Span:
    return _span(a.file, a.line, a.col, b.end_line, b.end_col)


def _number(t: Token) -> Num:
    from irqlab.resolve import parse_quantity

    sp = _tok_span(t)
    text = " ".join(str(t).split())
    try:
        q = parse_quantity(text)
    except ValueError as e:
        _ctx.errors.append(ScenarioError(str(e), sp))
        q = Quantity(0.0, "", text)
    return _new(Num, span=sp, value=q)


class AstBuilder(Transformer):
    """Parse-tree rules -> statements and :mod:`irqlab.ir` expressions (also run
    inline by the fast parser, so every method takes the children list)."""

    # statements
    def start(self, c: list) -> list:
        return _sift(c)

    def expression(self, c: list) -> Any:
        return c[0]

    def stmt(self, c: list) -> Stmt:
        head = c[0]
        rest = c[1:]
        tail = None
        if rest and isinstance(rest[-1], (Block, Assign, Within, Compare, Approx)):
            tail = rest.pop()
        hs = _tok_span(head)
        end = tail.span if tail is not None else (rest[-1].span if rest else hs)
        if type(tail) is Block and head != "expect":
            tail.stmts = _sift(tail.stmts)
        return Stmt(str(head), hs, rest, tail, _join(hs, end))

    def param(self, c: list) -> ParamStmt:
        kw, name, value = c
        return ParamStmt(str(name), _tok_span(name), value, _join(_tok_span(kw), value.span))

    def where(self, c: list) -> WhereStmt:
        kw, e = c
        return WhereStmt(e, _join(_tok_span(kw), e.span))

    def check(self, c: list) -> CheckStmt:
        tail = c.pop() if isinstance(c[-1], (Compare, Approx)) else None
        call = self.call(c)
        e = call if tail is None else with_tail(call, tail)
        return CheckStmt(e, e.span)

    def compare(self, c: list) -> Compare:
        op, value = c
        return Compare(str(op), value, _join(_tok_span(op), value.span))

    def approx(self, c: list) -> Approx:
        kw, tol, _, target = c
        return Approx(tol, target, _join(_tok_span(kw), target.span))

    def block(self, c: list) -> Block:
        return Block(c[1:-1], _join(_tok_span(c[0]), _tok_span(c[-1])))

    def assign(self, c: list) -> Assign:
        return Assign(c[0], c[0].span)

    def within(self, c: list) -> Within:
        return Within(c[1], _join(_tok_span(c[0]), c[1].span))

    def range(self, c: list) -> Range:
        low, high, *flags = c
        fl = [(str(f), _tok_span(f)) for f in flags]
        end = fl[-1][1] if fl else high.span
        return Range(low, high, fl, _join(low.span, end))

    def list(self, c: list) -> ListLit:
        items = [x for x in c[1:-1] if x is not None]
        return ListLit(items, _join(_tok_span(c[0]), _tok_span(c[-1])))

    # expressions
    def number(self, c: list) -> Num:
        return _number(c[0])

    def name(self, c: list) -> Name:
        return _new(Name, span=_tok_span(c[0]), name=str(c[0]))

    def string(self, c: list) -> StrLit:
        t = c[0]
        raw = str(t)[1:-1]
        try:
            value = raw.encode("latin-1", "backslashreplace").decode("unicode_escape") if "\\" in raw else raw
        except UnicodeDecodeError:
            value = raw
        return StrLit(value, _tok_span(t))

    def call(self, c: list) -> Call:
        f, *args, rpar = c
        args = [a for a in args if a is not None]
        return Call(span=_join(_tok_span(f), _tok_span(rpar)), func=str(f)[:-1].strip(), args=tuple(args))

    def paren(self, c: list) -> Any:
        return c[1]

    def cmp(self, c: list) -> Binary:
        a, op, b = c
        return Binary(span=_join(a.span, b.span), op=str(op), left=a, right=b)

    def near(self, c: list) -> Near:
        a, _, tol, _, b = c
        return Near(span=_join(a.span, b.span), value=a, tolerance=tol, target=b)

    def percent(self, c: list) -> Unary:
        t = c[0]
        num = _number(Token.new_borrow_pos("NUMBER", str(t)[:-1], t))
        return Unary(span=_tok_span(t), op="%", operand=num)

    def not_(self, c: list) -> Unary:
        return _prefixed(c, "not")

    def neg(self, c: list) -> Unary:
        return _prefixed(c, "-")

    def pos(self, c: list) -> Unary:
        return _prefixed(c, "+")


def _prefixed(c: list, op: str) -> Unary:
    """A prefix operator: its span runs from the operator's token (kept by the grammar's
    ``!``) to the end of its operand, so that a caret under ``-1`` starts at the sign."""
    sign, operand = c
    return Unary(span=_join(_tok_span(sign), operand.span), op=op, operand=operand)


def is_assertion(st: Any) -> bool:
    """True for a statement only an expect block can hold (a comparison or a check)."""
    return type(st) is CheckStmt or (type(st) is Stmt and type(st.tail) in (Compare, Approx))


def _sift(stmts: list) -> list:
    """``stmts`` without assertions, each reported: outside ``expect { }`` they mean nothing."""
    if not any(is_assertion(st) for st in stmts):
        return stmts
    for st in stmts:
        if is_assertion(st):
            _ctx.errors.append(ScenarioError("a comparison like this belongs in an expect block", st.span,
                                             hint="write it inside 'expect { ... }' in a scenario or sweep"))
    return [st for st in stmts if not is_assertion(st)]


def with_tail(e: Expr, tail: Compare | Approx) -> Expr:
    """``e`` followed by a comparison or ``within`` tail, as one expression."""
    if isinstance(tail, Compare):
        return Binary(span=_join(e.span, tail.value.span), op=tail.op, left=e, right=tail.value)
    return Near(span=_join(e.span, tail.target.span), value=e, tolerance=tail.tolerance, target=tail.target)


def _binary(op: str):
    def make(self: AstBuilder, c: list) -> Binary:
        a, b = c
        return _new(Binary, span=_join(a.span, b.span), op=op, left=a, right=b)

    return make


for _rule, _op in _BINOPS.items():
    setattr(AstBuilder, _rule, _binary(_op))


# --------------------------------------------------------------------------- the parsers


class _PostLex:
    """Drops new lines inside ( ) and [ ], folds repeated new lines, and bounds
    nesting so that every later (recursive) pass stays shallow."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.local = threading.local()

    @property
    def open_braces(self) -> list:
        return getattr(self.local, "braces", [])

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        loc = self.local
        if getattr(loc, "resume", False):  # the lexer restarted after a bad character
            loc.resume = False
            brackets, braces, last_nl = loc.brackets, loc.braces, False
        else:
            brackets, braces, last_nl = [], [], True
            loc.brackets, loc.braces = brackets, braces
        ops = 0
        for tok in stream:
            t = tok.type
            if t == "_NL":
                if brackets or last_nl:
                    continue
                last_nl = True
                ops = 0
                yield tok
                continue
            last_nl = False
            if t in ("LPAR", "LSQB", "FUNC"):
                brackets.append(tok)
                if len(brackets) > MAX_BRACKETS:
                    raise ScenarioError(f"brackets nested more than {MAX_BRACKETS} deep", _tok_span(tok))
            elif t in ("RPAR", "RSQB"):
                if brackets:
                    brackets.pop()
            elif t == "LBRACE":
                braces.append(tok)
                ops = 0
                if len(braces) > MAX_BLOCKS:
                    raise ScenarioError(f"blocks nested more than {MAX_BLOCKS} deep", _tok_span(tok))
            elif t == "RBRACE":
                if braces:
                    braces.pop()
                ops = 0
            elif t == "SEMICOLON":
                ops = 0
            elif t in _OPERATOR_TOKENS:
                ops += 1
                if ops > MAX_OPERATORS:
                    raise ScenarioError(f"statement too long: more than {MAX_OPERATORS} operators",
                                        _tok_span(tok), hint="split it with named parameters")
            yield tok


_OPERATOR_TOKENS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "CMP", "AND", "OR", "NOT",
                              "__ANON_0", "__ANON_1", "__ANON_2", "DOUBLESTAR", "DOUBLESLASH"})

_lock = threading.Lock()
_parsers: dict[str, Lark] = {}
_postlex = _PostLex()


def grammar_text() -> str:
    return resources.files("irqlab.dsl").joinpath("scn.lark").read_text(encoding="utf-8")


def _parser(kind: str) -> Lark:
    p = _parsers.get(kind)
    if p is None:
        with _lock:
            p = _parsers.get(kind)
            if p is None:
                opts: dict[str, Any] = dict(parser="lalr", lexer="contextual", start=["start", "expression"],
                                            cache=True,  # grammar tables reused across processes
                                            postlex=_postlex, maybe_placeholders=True)
                if kind == "ast":
                    opts["transformer"] = AstBuilder()
                p = Lark(grammar_text(), **opts)
                _fix_operator_names(p)
                _parsers[kind] = p
    return p


def _fix_operator_names(p: Lark) -> None:
    global _OPERATOR_TOKENS
    ops = {"+", "-", "*", "/", "//", "%", "**", "and", "or", "not"}
    names = {t.name for t in p.terminals if getattr(t.pattern, "value", None) in ops}
    _OPERATOR_TOKENS = frozenset(names | {"CMP"})


# --------------------------------------------------------------------------- entry points


def check_text(text: str, filename: str) -> str:
    """``text`` ready for the lexer, or a located ScenarioError for NUL bytes."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        col = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise ScenarioError("the file contains a NUL byte (is it a binary file?)",
                            Span(filename, line, col, line, col + 1), source_line=_line(text, line))
    return text


def decode(data: bytes, filename: str) -> str:
    """UTF-8 bytes -> text; invalid UTF-8 is a located ScenarioError."""
    from irqlab.files import decode_utf8

    return decode_utf8(data, filename)


def _line(text: str, line: int) -> str | None:
    lines = text.split("\n")
    return lines[line - 1] if 1 <= line <= len(lines) else None


def parse_tree(text: str, filename: str = "<string>") -> lark.Tree:
    """The lark parse tree of ``text`` (syntax errors as ScenarioError)."""
    text = check_text(text, filename)
    _ctx.file = filename
    try:
        return _parser("tree").parse(text, start="start")
    except UnexpectedInput as e:
        raise all_syntax_errors(text, filename, e) from None
    except ScenarioError as e:
        raise e.with_sources({filename: text}) from None


def parse_statements(text: str, filename: str = "<string>") -> list:
    """The statements of ``text`` (the fast path: built while parsing)."""
    text = check_text(text, filename)
    _ctx.file = filename
    _ctx.errors = []
    try:
        stmts = _parser("ast").parse(text, start="start")
    except UnexpectedInput as e:
        raise all_syntax_errors(text, filename, e) from None
    except VisitError as e:
        raise _unwrap(e, text, filename) from None
    except ScenarioError as e:
        raise e.with_sources({filename: text}) from None
    return _finish(stmts, text, filename)


def tree_statements(tree: lark.Tree, filename: str, text: str = "") -> list:
    """The statements of a parse tree from :func:`parse_tree`."""
    _ctx.file = filename
    _ctx.errors = []
    try:
        stmts = AstBuilder().transform(tree)
    except VisitError as e:
        raise _unwrap(e, text, filename) from None
    return _finish(stmts, text, filename)


def _finish(stmts: list, text: str, filename: str) -> list:
    errors, _ctx.errors = _ctx.errors, []
    if errors:
        from irqlab.errors import collect

        merged = collect(errors)
        assert merged is not None
        raise merged.with_sources({filename: text})
    return stmts


def _unwrap(e: VisitError, text: str, filename: str) -> ScenarioError:
    inner = e.orig_exc
    if isinstance(inner, ScenarioError):
        return inner.with_sources({filename: text})
    raise inner


def parse_expression(text: str, span: Span | None = None) -> Any:
    """An expression given as text (``--set`` values, overrides); errors at ``span``."""
    filename = span.file if span is not None else "<value>"
    _ctx.file = filename
    _ctx.errors = []
    try:
        e = _parser("ast").parse(check_text(text, filename), start="expression")
    except (UnexpectedInput, ScenarioError) as ex:
        msg = syntax_error(ex, text, filename).message if isinstance(ex, UnexpectedInput) else ex.message
        raise ScenarioError(f"cannot read the value '{text}': {msg}", span) from None
    errors, _ctx.errors = _ctx.errors, []
    if errors:
        raise ScenarioError(f"cannot read the value '{text}': {errors[0].message}", span)
    if isinstance(e, StrLit):
        return e.value
    if span is not None:
        e = _respan(e, span)
    return e


def _respan(e: Any, span: Span) -> Any:
    """Give an expression parsed from an override the override's span."""
    from dataclasses import replace

    if isinstance(e, Binary):
        return replace(e, span=span, left=_respan(e.left, span), right=_respan(e.right, span))
    if isinstance(e, Unary):
        return replace(e, span=span, operand=_respan(e.operand, span))
    if isinstance(e, Call):
        return replace(e, span=span, args=tuple(_respan(a, span) for a in e.args))
    if isinstance(e, Expr):
        return replace(e, span=span)
    return e


# --------------------------------------------------------------------------- error recovery

MAX_SYNTAX_ERRORS = 20
_SEPARATORS = frozenset({"_NL", "SEMICOLON"})


def all_syntax_errors(text: str, filename: str, first: UnexpectedInput) -> ScenarioError:
    """Every syntax error of ``text`` that can be told apart, as one ScenarioError.

    Called once the fast parse has failed with ``first``. The text is parsed again
    token by token; after an error, tokens are skipped to the end of the broken
    statement (a new line or ';' outside the braces it opened, or the '}' of the
    enclosing block), the parser is put back to where that statement began, and
    parsing goes on. Reporting stops after ``MAX_SYNTAX_ERRORS``. An error that may
    only be an echo of the previous one (a statement right after a '}' that closed a
    block by recovery) is not reported. If recovery itself fails in a way the
    first parse did not, the first error alone is reported.
    """
    head = syntax_error(first, text, filename)  # before the lexer state is reused below
    try:
        found = _recover(text, filename)
    except ScenarioError as e:  # a nesting bound hit later in the file
        found = [e.with_sources({filename: text})]
    except Exception:  # noqa: BLE001 - the first error is right and must not be lost
        found = []
    finally:
        _postlex.local.resume = False  # never carried into the next file's parse
    if not found or found[0].span != head.span:
        found = [head]
    merged = collect(found)
    assert merged is not None
    return merged


def _recover(text: str, filename: str) -> list[ScenarioError]:
    ip = _parser("tree").parse_interactive(text, start="start")
    state, lexer = ip.parser_state, ip.lexer_thread
    errors: list[ScenarioError] = []
    seen: set[tuple[int, int]] = set()
    snaps = [(list(state.state_stack), list(state.value_stack))]  # one per open block
    skipping, depth, quiet = False, 0, False

    def report(e: UnexpectedInput) -> None:
        if quiet:
            return
        if isinstance(e, UnexpectedToken) and e.interactive_parser is None:
            e.interactive_parser = InteractiveParser(ip.parser, state.copy(deepcopy_values=False),
                                                     lexer)
        err = syntax_error(e, text, filename)
        key = (err.span.line, err.span.col) if err.span else (0, 0)
        if key not in seen:
            seen.add(key)
            errors.append(err)

    def restore() -> None:
        state.state_stack[:], state.value_stack[:] = snaps[-1][0], snaps[-1][1]

    def feed(tok: Token) -> bool:
        """Feed ``tok`` in normal mode; False (and reported) if the parser refuses it."""
        nonlocal quiet
        try:
            state.feed_token(tok, tok.type == "$END")
        except UnexpectedToken as e:
            report(e)
            return False
        t = tok.type
        if t in _SEPARATORS:
            snaps[-1] = (list(state.state_stack), list(state.value_stack))
            quiet = False
        elif t == "LBRACE":
            snaps.append((list(state.state_stack), list(state.value_stack)))
        elif t == "RBRACE" and len(snaps) > 1:
            snaps.pop()
        return True

    def resync(tok: Token) -> None:
        """Back to the start of the broken statement, then take ``tok`` (which ends it)."""
        nonlocal skipping, quiet
        restore()
        _postlex.local.brackets.clear()  # the statement's open ( and [ went with it
        skipping = False
        if not feed(tok):
            restore()  # a '}' with no block to close here: drop it
        elif tok.type == "RBRACE":
            quiet = True

    def skip(tok: Token) -> None:
        nonlocal depth
        t = tok.type
        if t == "LBRACE":
            depth += 1
        elif t == "RBRACE" and depth:
            depth -= 1
        elif t in _SEPARATORS and depth:
            pass
        elif t in _SEPARATORS or t in ("RBRACE", "$END"):
            resync(tok)

    def fail() -> None:
        nonlocal skipping, depth
        skipping, depth = True, 0

    stream = lexer.lex(state)
    last: Token | None = None
    while len(errors) < MAX_SYNTAX_ERRORS:
        try:
            tok = next(stream)
        except StopIteration:
            break
        except UnexpectedToken as e:  # a token the contextual lexer does not allow here
            _postlex.local.resume = True
            stream = lexer.lex(state)
            if not skipping:
                report(e)
                fail()
            last = e.token
            skip(e.token)
            continue
        except UnexpectedCharacters as e:
            report(e)
            fail()
            lexer.state.line_ctr.feed(text[e.pos_in_stream:e.pos_in_stream + 1])
            _postlex.local.resume = True
            stream = lexer.lex(state)
            continue
        last = tok
        if skipping:
            skip(tok)
        elif not feed(tok):
            fail()
            skip(tok)
    else:
        return errors
    end = Token.new_borrow_pos("$END", "", last) if last is not None else Token("$END", "", 0, 1, 1)
    if skipping:
        skip(end)
    else:
        feed(end)
    return errors


# --------------------------------------------------------------------------- error wording

_WORDS = {
    "NAME": "a name",
    "DOTTED": "a dotted path",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "FUNC": "a function call",
    "CMP": "a comparison",
    "_NL": "a new line",
    "$END": "the end of the file",
    "PARAM": "'param'",
    "WHERE": "'where'",
    "IN": "'in'",
    "WITHIN": "'within'",
    "OF": "'of'",
}
_VALUE_START = {"NUMBER", "NAME", "DOTTED", "STRING", "FUNC", "LPAR", "MINUS", "PLUS", "NOT"}


def _word(term: str, p: Lark) -> str:
    if term in _WORDS:
        return _WORDS[term]
    for t in p.terminals:
        if t.name == term:
            v = getattr(t.pattern, "value", None)
            if t.pattern.type == "str" and v is not None:
                return f"'{v}'"
    return "a token"


def _expected_words(expected: set[str], p: Lark) -> list[str]:
    exp = set(expected)
    out: list[str] = []
    if exp & {"NUMBER", "FUNC", "LPAR"} and exp & {"NAME"}:
        out.append("a value (a number such as 10us, a name or an expression)")
        exp -= _VALUE_START | {"LSQB"} if "LSQB" in exp and False else _VALUE_START
    ops = {n for n in exp if _word(n, p).strip("'") in ("+", "-", "*", "/", "//", "%", "**", "and",
                                                          "or", "..")} | ({"CMP"} & exp)
    if ops and (exp - ops):
        exp -= ops
        ops_note = True
    else:
        ops_note = False
    if {"_NL", "SEMICOLON"} <= exp:
        exp -= {"_NL", "SEMICOLON"}
        out.append("a new line or ';'")
    order = ["NAME", "DOTTED", "LBRACE", "RBRACE", "LSQB", "RSQB", "EQUAL", "IN", "COMMA", "RPAR"]
    rest = sorted(exp, key=lambda n: (order.index(n) if n in order else 99, n))
    out.extend(dict.fromkeys(_word(n, p) for n in rest))
    if ops_note:
        out.append("an operator")
    return out


def _or(words: list[str]) -> str:
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _found(tok: Token | None) -> str:
    if tok is None or tok.type == "$END":
        return "the end of the file"
    if tok.type == "_NL":
        return "a new line"
    s = str(tok)
    if len(s) > 30:
        s = s[:27] + "..."
    return f"'{s}'"


def syntax_error(e: UnexpectedInput | Exception, text: str, filename: str) -> ScenarioError:
    """A lark error as the user should read it."""
    p = _parsers.get("ast") or _parser("tree")
    line = getattr(e, "line", None) or 1
    col = getattr(e, "column", None) or 1
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else ""
        span = Span(filename, line, col, line, col + 1)
        if ch == '"':
            return ScenarioError("unterminated string (a string ends on its own line)", span,
                                 source_line=_line(text, line))
        shown = f"'{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}" if ch else "end of file"
        return ScenarioError(f"unexpected character {shown}", span, source_line=_line(text, line),
                             hint="scenario files hold names, numbers, quoted strings, operators, "
                             "{ } [ ] ( ) = ; , and # comments")
    tok: Token | None = getattr(e, "token", None)
    expected = set(getattr(e, "expected", None) or getattr(e, "accepts", None) or ())
    ip = getattr(e, "interactive_parser", None)
    if ip is not None:
        try:  # LALR lookahead sets are too wide; ask what can really come next
            expected = set(ip.accepts()) or expected
        except Exception:  # noqa: BLE001 - the wide set is still right, only longer
            pass
    at_end = isinstance(e, UnexpectedEOF) or (tok is not None and tok.type == "$END")
    if at_end:
        braces = _postlex.open_braces
        lines = text.split("\n")
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        if braces:
            return _unclosed(braces[-1], lines, filename)
        line = len(lines)
        col = len(lines[-1]) + 1 if lines else 1
        span = Span(filename, line, col, line, col + 1)
        return ScenarioError(f"unexpected end of file; expected {_or(_expected_words(expected, p))}",
                             span, source_line=_line(text, line))
    assert tok is not None
    span = Span(filename, tok.line or line, tok.column or col, tok.end_line or line,
                tok.end_column or col + 1)
    src = _line(text, span.line)
    if tok.type == "RBRACE" and not _postlex.open_braces and "RBRACE" not in expected:
        return ScenarioError("unmatched '}'", span, source_line=src)
    words = _expected_words(expected, p)
    msg = f"unexpected {_found(tok)}; expected {_or(words)}"
    hint = None
    if tok.type == "_NL" and expected & {"NUMBER", "NAME"}:
        msg = f"unexpected end of line; expected {_or(words)}"
    if tok.type in ("MINUS", "PLUS"):
        hint = "a value that starts with a sign needs parentheses: (-1us)"
    if tok.type == "EQUAL":
        hint = "to compare two values, write '=='"
    return ScenarioError(msg, span, hint=hint, source_line=src)


def _unclosed(innermost: Token, lines: list[str], filename: str) -> ScenarioError:
    """The error for a file that ends with a '{' open. A later '}' may have closed the
    wrong block, so the brace to blame is found by indentation: the first '{' followed,
    before its block is closed, by a statement indented no deeper than the brace's own
    line (the block evidently ended there, without its '}'); else ``innermost``, the
    '{' the parser still has open."""
    end = f"the file ends at line {len(lines)} with it open"
    stack: list[tuple[int, int, int]] = []  # (line, col, indentation of its line), 1-based
    for no, raw in enumerate(lines, 1):
        code = _code_part(raw)
        body = code.strip()
        indent = len(code) - len(code.lstrip())
        if stack and body and not body.startswith("}") and no > stack[-1][0] and indent <= stack[-1][2]:
            line, col, _ = stack[-1]
            span = Span(filename, line, col, line, col + 1)
            return ScenarioError(f"this '{{' is never closed: {end}", span, source_line=lines[line - 1],
                                 hint=f"line {no} is indented like this block's first line, so the "
                                      f"block ends before it: add the missing '}}' there")
        for i, ch in enumerate(code):
            if ch == "{":
                stack.append((no, i + 1, indent))
            elif ch == "}" and stack:
                stack.pop()
    b = innermost
    return ScenarioError(f"this '{{' is never closed: {end}", _tok_span_in(b, filename),
                         hint="add the missing '}'", source_line=lines[b.line - 1] if b.line else None)


def _code_part(line: str) -> str:
    """``line`` without its comment and with its strings blanked (their braces are text)."""
    out, in_str = [], False
    for ch in line:
        if ch == '"':
            in_str = not in_str
        elif ch == "#" and not in_str:
            break
        out.append(" " if in_str and ch != '"' else ch)
    return "".join(out).rstrip()


def _tok_span_in(t: Token, filename: str) -> Span:
    return Span(filename, t.line or 1, t.column or 1, t.end_line or 1, t.end_column or 2)
