"""Canonical formatting of ``.scn`` files (``irqlab fmt``).

The layout is decided by the parse tree alone, so formatting twice changes
nothing and the result lowers to the same IR:

* one statement per line, blocks indented by four spaces; a block written on
  one line stays on one line (``{ gsi 23; vector 0x50 }``), an empty block
  is ``{}``;
* single spaces between words, around ``=``, ``in``, ``..`` and binary
  operators; lists and calls as ``[a, b]`` and ``f(a, b)``; parentheses and
  the spelling of numbers are kept (only the space before ``cycles`` is
  normalized);
* at most one blank line between statements, none at the start or end of a
  block;
* comments are kept: a comment on its own line stays before the statement it
  precedes, an end-of-line comment stays at the end of its statement's last
  line (two spaces before ``#``), a comment after ``{`` stays there, and a
  comment inside a multi-line list or expression moves to its own line
  before the statement.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Token, Tree

from irqlab.dsl.syntax import check_text, parse_tree

INDENT = "    "
_BIN = {"or_": "or", "and_": "and", "add": "+", "sub": "-", "mul": "*", "div": "/",
        "floordiv": "//", "mod": "%", "pow": "**"}


@dataclass
class Comment:
    line: int
    col: int
    text: str
    used: bool = False

    @property
    def pos(self) -> tuple[int, int]:
        return (self.line, self.col)


def scan_comments(text: str) -> list[Comment]:
    """Every ``#`` comment outside strings, in order."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if "#" not in line:
            continue
        in_str = False
        i = 0
        while i < len(line):
            ch = line[i]
            if in_str:
                if ch == "\\":
                    i += 2
                    continue
                if ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "#":
                out.append(Comment(n, i + 1, line[i:].rstrip()))
                break
            i += 1
    return out


def format_text(text: str, filename: str = "<string>") -> str:
    """``text`` in canonical layout; a ScenarioError if it does not parse."""
    text = check_text(text, filename)
    tree = parse_tree(text, filename)
    lines = text.split("\n")
    blank = {i + 1 for i, ln in enumerate(lines) if not ln.strip()}
    p = _Printer(scan_comments(text), blank)
    p.body(list(_stmts(tree.children)), (0, 0), (10**9, 0), 0)
    out = "\n".join(_align(p.out)).rstrip("\n")
    return out + "\n" if out else ""


def _align(lines: list) -> list[str]:
    """Lines as text; end-of-line comments of consecutive lines at one indentation
    start in one column."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if isinstance(ln, str):
            out.append(ln)
            i += 1
            continue
        if ln[1] is None:
            out.append(ln[0])
            i += 1
            continue
        ind = len(ln[0]) - len(ln[0].lstrip(" "))
        j = i
        while j < len(lines) and isinstance(lines[j], tuple) and lines[j][1] is not None and \
                len(lines[j][0]) - len(lines[j][0].lstrip(" ")) == ind:
            j += 1
        width = max(len(lines[k][0]) for k in range(i, j))
        for k in range(i, j):
            code, comment = lines[k]
            out.append(code + " " * (width - len(code) + 2) + comment)
        i = j
    return out


def _stmts(children: list) -> list:
    return [c for c in children if isinstance(c, Tree)]


def _first(node: object) -> Token:
    while isinstance(node, Tree):
        node = next(c for c in node.children if c is not None)
    assert isinstance(node, Token)
    return node


def _last(node: object) -> Token:
    while isinstance(node, Tree):
        node = next(c for c in reversed(node.children) if c is not None)
    assert isinstance(node, Token)
    return node


def _start(node: object) -> tuple[int, int]:
    t = _first(node)
    return (t.line or 0, t.column or 0)


def _end(node: object) -> tuple[int, int]:
    t = _last(node)
    return (t.end_line or t.line or 0, t.end_column or 0)


def _block(st: Tree) -> Tree | None:
    if st.data == "stmt" and st.children and isinstance(st.children[-1], Tree) and \
            st.children[-1].data == "block":
        return st.children[-1]
    return None


class _Printer:
    def __init__(self, comments: list[Comment], blank: set[int]) -> None:
        self.comments = comments
        self.blank = blank
        self.out: list = []  # str, or (code, end-of-line comment or None)

    # -- comments

    def take(self, lo: tuple[int, int], hi: tuple[int, int]) -> list[Comment]:
        got = [c for c in self.comments if not c.used and lo < c.pos < hi]
        for c in got:
            c.used = True
        return got

    def emit_comments(self, cs: list[Comment], ind: int, first: bool) -> bool:
        for c in cs:
            self.blank_before(c.line, first)
            self.out.append(INDENT * ind + c.text)
            first = False
        return first

    def blank_before(self, line: int, first: bool) -> None:
        if not first and (line - 1) in self.blank and self.out and self.out[-1] != "":
            self.out.append("")

    # -- statements

    def body(self, stmts: list, lo: tuple[int, int], hi: tuple[int, int], ind: int) -> None:
        first = True
        for i, st in enumerate(stmts):
            s, e = _start(st), _end(st)
            first = self.emit_comments(self.take(lo, s), ind, first)
            self.blank_before(s[0], first)
            first = False
            blk = _block(st)
            head_end = (blk.children[0].line, blk.children[0].column) if blk is not None else e
            hoisted = self.take(s, head_end)
            self.emit_comments(hoisted, ind, True)
            nxt = _start(stmts[i + 1]) if i + 1 < len(stmts) else None
            same_line_next = nxt is not None and nxt[0] == e[0]
            if blk is not None and self.expanded(blk):
                lb, rb = blk.children[0], blk.children[-1]
                inner = _stmts(blk.children[1:-1])
                open_pos = (lb.line, lb.column)
                close_pos = (rb.line, rb.column)
                header = None
                if not inner or _start(inner[0])[0] != lb.line:
                    hc = [c for c in self.comments if not c.used and c.line == lb.line and c.pos > open_pos]
                    if hc:
                        hc[0].used = True
                        header = hc[0].text
                self.out.append((INDENT * ind + self.head(st) + " {", header))
                self.body(inner, open_pos, close_pos, ind + 1)
                line = INDENT * ind + "}"
            else:
                line = INDENT * ind + self.stmt(st)
            trailing = None
            if not same_line_next:
                tc = [c for c in self.comments if not c.used and c.line == e[0] and c.pos >= e]
                if tc:
                    tc[0].used = True
                    trailing = tc[0].text
            self.out.append((line, trailing))
            lo = e
        self.emit_comments(self.take(lo, hi), ind, first)

    def expanded(self, blk: Tree) -> bool:
        lb, rb = blk.children[0], blk.children[-1]
        inside = any(not c.used and (lb.line, lb.column) < c.pos < (rb.line, rb.column) for c in self.comments)
        if not _stmts(blk.children[1:-1]):
            return inside
        if lb.line != rb.line:
            return True
        return any(not c.used and (lb.line, lb.column) < c.pos < (rb.line, rb.column) for c in self.comments)

    def head(self, st: Tree) -> str:
        """A statement without its block."""
        kids = [c for c in st.children if c is not None]
        if _block(st) is not None:
            kids = kids[:-1]
        return self.stmt_parts(st.data, kids)

    def stmt(self, st: Tree) -> str:
        kids = [c for c in st.children if c is not None]
        return self.stmt_parts(st.data, kids)

    def stmt_parts(self, kind: str, kids: list) -> str:
        if kind == "param":
            _, name, value = kids
            return f"param {name} = {self.expr(value)}"
        if kind == "where":
            return f"where {self.expr(kids[1])}"
        if kind == "check":
            tail = kids.pop() if isinstance(kids[-1], Tree) and kids[-1].data in ("compare", "approx") else None
            call = self.expr(Tree("call", kids))
            return call if tail is None else f"{call} {self.tail(tail)}"
        parts = [str(kids[0])]
        for k in kids[1:]:
            if isinstance(k, Tree) and k.data == "block":
                parts.append(self.inline_block(k))
            elif isinstance(k, Tree) and k.data == "assign":
                parts.append("= " + self.expr(k.children[0]))
            elif isinstance(k, Tree) and k.data == "within":
                parts.append("in " + self.expr(k.children[1]))
            elif isinstance(k, Tree) and k.data in ("compare", "approx"):
                parts.append(self.tail(k))
            else:
                parts.append(self.expr(k))
        return " ".join(parts)

    def tail(self, t: Tree) -> str:
        """An expectation's ``OP value`` or ``within TOL of value``."""
        if t.data == "compare":
            return f"{t.children[0]} {self.expr(t.children[1])}"
        return f"within {self.expr(t.children[1])} of {self.expr(t.children[3])}"

    def inline_block(self, blk: Tree) -> str:
        inner = _stmts(blk.children[1:-1])
        if not inner:
            return "{}"
        return "{ " + "; ".join(self.stmt(s) for s in inner) + " }"

    # -- expressions

    def expr(self, e: object) -> str:
        if isinstance(e, Token):
            return _tok(e)
        assert isinstance(e, Tree)
        d = e.data
        k = [c for c in e.children if c is not None]
        if d in ("number", "name", "string"):
            return _tok(k[0])
        if d in _BIN:
            return f"{self.expr(k[0])} {_BIN[d]} {self.expr(k[1])}"
        if d == "cmp":
            return f"{self.expr(k[0])} {k[1]} {self.expr(k[2])}"
        if d == "near":
            return f"{self.expr(k[0])} within {self.expr(k[2])} of {self.expr(k[4])}"
        if d == "percent":
            return str(k[0])
        if d == "neg":
            return "-" + self.expr(k[-1])
        if d == "pos":
            return "+" + self.expr(k[-1])
        if d == "not_":
            return "not " + self.expr(k[-1])
        if d == "paren":
            return "(" + self.expr(k[1]) + ")"
        if d == "call":
            name = str(k[0])[:-1].strip()
            return f"{name}(" + ", ".join(self.expr(a) for a in k[1:-1]) + ")"
        if d == "list":
            return "[" + ", ".join(self.expr(a) for a in k[1:-1]) + "]"
        if d == "range":
            low, high, *flags = k
            return " ".join([f"{self.expr(low)} .. {self.expr(high)}", *map(str, flags)])
        raise AssertionError(f"cannot format {d}")  # pragma: no cover - the grammar has no other node


def _tok(t: Token) -> str:
    if t.type == "NUMBER":
        return " ".join(str(t).split())
    return str(t)
