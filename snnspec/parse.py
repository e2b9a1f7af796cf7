"""Text to syntax: the lark grammar, and the conversion of its tree to IR nodes with spans.

The grammar is LALR(1) with lark's contextual lexer (keywords are reserved only where the
grammar expects them, and only as whole words). The conversion, and the stages after it, walk
expressions recursively, so the tree's depth is checked first: deep nesting, or a flat chain
too long for that walk, is a diagnostic, never a RecursionError.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from functools import cache
from typing import Any, cast

import lark
from lark import Token, Tree

from . import ir
from .cache import cache_dir, write_atomic
from .depth import MAX_DEPTH, MAX_NESTING
from .diagnostics import Diagnostics
from .grammar import grammar_text

MAX_INT = 2**31 - 1  # steps, shapes, batch and epochs are 32-bit indices in the generated code

_TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a quoted path",
    "_NL": "end of line", "DERIV": "a derivative `dX/dt`", "COMPARE": "`>` or `>=`",
    "ASSIGN_OP": "`=`, `+=`, `-=` or `*=`", "SURROGATE_KIND": "`smooth` or `grad`",
    "SCOPE": "`pre`, `post` or `syn`", "EVENT": "`pre` or `post`", "$END": "end of file",
}


_TEXT: ContextVar[str] = ContextVar("snnspec_parse_text", default="")


class _WholeWords:
    """A lark post-lexer: a keyword is a keyword only as a whole word, and never before `<-`.

    The contextual lexer matches `neuron` at the start of `neuronA` where a name cannot stand;
    that word is the name `neuronA`, which the parser reports as it reports any misplaced name.
    Only a name can stand before `<-`, so `spike <- ...` updates something named `spike` (the
    checker says whether the block may declare that name).
    """

    always_accept = ()

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        text = _TEXT.get()
        end = -1
        for tok in stream:
            start, stop = tok.start_pos or 0, tok.end_pos or 0
            if start < end:
                continue  # inside a word already given as one name
            if tok.type != "NAME" and _NAME.fullmatch(str(tok)):
                if _WORD_CHAR.match(text, stop):
                    word = _WORD.match(text, start)
                    assert word is not None
                    end = word.end()
                    tok = Token("NAME", word.group(), start_pos=start, line=tok.line, column=tok.column,
                                end_line=tok.line, end_column=(tok.column or 1) + len(word.group()), end_pos=end)
                elif _UPDATE.match(text, stop):
                    tok = Token.new_borrow_pos("NAME", str(tok), tok)
            yield tok

    def __repr__(self) -> str:  # part of the parser cache's key: the same in every process
        return "_WholeWords()"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME = 24  # names joined in generated code (`x_h`, `h_v_now`) leave room in a line of 120 characters
_WORD = re.compile(r"[A-Za-z0-9_]+")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
_UPDATE = re.compile(r"[ \t]*<-")

PARSER_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual", "propagate_positions": True,
                                  "maybe_placeholders": True, "postlex": _WholeWords()}


@cache
def parser() -> lark.Lark:
    """The parser. Building its LALR tables takes a few tenths of a second, so they are kept in the
    cache folder, keyed by the grammar, the options, lark's version and Python's."""
    text = grammar_text()
    key = f"{text}\0{sorted(PARSER_OPTIONS.items())}\0{lark.__version__}\0{sys.version_info[:2]}"
    file = cache_dir() / "parser" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pickle"
    try:
        with file.open("rb") as f:
            return lark.Lark.load(f)
    except Exception:  # missing, or a truncated or foreign pickle, which can fail in any way
        pass
    built = lark.Lark(text, **PARSER_OPTIONS)
    saved = io.BytesIO()
    built.save(saved)
    write_atomic(file, saved.getvalue())
    return built


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    try:
        pattern = parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"`{pattern.value}`"
    return terminal.lower()


def _expected(names: Sequence[str]) -> str:
    words = sorted({_describe(n) for n in names if not n.startswith("__IGNORE")})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "expected " + ", ".join(words) if words else ""


def _span_at(file: str, line: int, column: int, width: int = 1) -> ir.Span:
    return ir.Span(file=file, line=line, column=column, end_line=line, end_column=column + width)


def _open_brackets(text: str, line: int, column: int) -> bool:
    """Whether a `(` or `[` is still open at `line:column`, counting from the start of that line."""
    lines = text.split("\n")
    before = lines[line - 1][:column - 1].split("#")[0] if 0 < line <= len(lines) else ""
    return before.count("(") + before.count("[") > before.count(")") + before.count("]")


def _syntax_error(err: lark.exceptions.UnexpectedInput, text: str, file: str, diags: Diagnostics) -> None:
    if isinstance(err, lark.exceptions.UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            diags.error("unexpected end of file", _span_at(file, err.line, err.column),
                        _expected(sorted(err.expected)) or None)
            return
        shown = "end of line" if tok.type == "_NL" else f"'{tok}'"
        width = 1 if tok.type == "_NL" else max(1, len(str(tok)))
        hint = _expected(sorted(err.expected))
        if tok.type == "_NL" and ("RPAR" in err.expected or _open_brackets(text, tok.line or 1, tok.column or 1)):
            hint += " (a bracketed list must be on one line; end a line with `\\` to continue it)"
        diags.error(f"unexpected {shown}", _span_at(file, tok.line or 1, tok.column or 1, width), hint or None)
    elif isinstance(err, lark.exceptions.UnexpectedCharacters):
        char = err.char if err.char.isprintable() else repr(err.char)
        allowed = getattr(err, "allowed", None) or ()
        diags.error(f"unexpected character '{char}'", _span_at(file, err.line, err.column),
                    _expected(sorted(allowed)) or None)
    else:  # UnexpectedEOF
        diags.error("unexpected end of file", _span_at(file, err.line if err.line > 0 else 1, 1))


def _keyword_as_name(err: lark.exceptions.UnexpectedInput) -> bool:
    """Read a keyword met where it cannot stand but a name can (`clip <- ...` in a neuron) as that name.

    The contextual lexer takes the keywords of every block after a line break, so without this a
    neuron could not have a state named `clip`, `loss` or `pre`. Returns whether parsing can resume.
    """
    if not isinstance(err, lark.exceptions.UnexpectedToken) or "NAME" not in err.expected:
        return False
    tok = err.token
    if tok.type in ("NAME", "$END") or not _NAME.fullmatch(str(tok)):
        return False
    err.interactive_parser.feed_token(Token.new_borrow_pos("NAME", str(tok), tok))
    return True


_CHAINS = {"add": "sum", "sub": "sum", "mul": "product", "div": "product"}


def _depth(tree: Tree) -> tuple[tuple[int, int], tuple[int, int]]:
    """(depth, line) of the deepest nesting and of the deepest node, without recursion.

    The left operand of a `+`/`-` (or `*`/`/`) that continues the same chain is one level of
    nesting with it: `a + b + ... + z` nests once however long it is.
    """
    nesting, depth = (0, 1), (0, 1)
    stack = [(tree, 1, 1)]
    while stack:
        node, nest, deep = stack.pop()
        line = 1 if node.meta.empty else node.meta.line
        nesting, depth = max(nesting, (nest, line)), max(depth, (deep, line))
        chain = _CHAINS.get(str(node.data))
        for i, child in enumerate(node.children):
            if isinstance(child, Tree):
                same = i == 0 and chain is not None and _CHAINS.get(str(child.data)) == chain
                stack.append((child, nest if same else nest + 1, deep + 1))
    return nesting, depth


def parse(text: str, file: str, diags: Diagnostics) -> ir.Module | None:
    """Parse one file. Syntax errors go to `diags` (and give None)."""
    token = _TEXT.set(text)
    try:
        tree = parser().parse(text, on_error=_keyword_as_name)
    except lark.exceptions.UnexpectedInput as err:
        _syntax_error(err, text, file, diags)
        return None
    finally:
        _TEXT.reset(token)
    (nesting, nest_line), (depth, deep_line) = _depth(tree)
    if nesting > MAX_NESTING:
        diags.error(f"the file nests deeper than {MAX_NESTING} levels", _span_at(file, nest_line, 1),
                    "split deeply nested expressions with `let`")
        return None
    if depth > MAX_DEPTH:
        diags.error(f"an expression is a chain of more than {MAX_DEPTH} operations", _span_at(file, deep_line, 1),
                    "split it into parts with `let`")
        return None
    long = next((tok for tok in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "NAME")
                 if len(tok) > MAX_NAME), None)
    if long is not None:
        diags.error(f"the name '{long[:16]}...' is {len(long)} characters long; names have at most {MAX_NAME}",
                    _span_at(file, long.line or 1, long.column or 1, len(long)),
                    "shorten it: generated code holds names joined with others, in lines of at most 120 characters")
        return None
    return _Builder(file, diags).module(tree)


def _shorten(text: str) -> str:
    """A literal as a message quotes it: a 5000-digit one by its ends."""
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} characters)"


_BINOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


class _Builder:
    """Converts the lark tree of one file to IR nodes; structural duplicates are reported here."""

    def __init__(self, file: str, diags: Diagnostics):
        self.file = file
        self.diags = diags

    # -- spans
    def span(self, node: Tree | Token) -> ir.Span:
        if isinstance(node, Token):
            line, col = node.line or 1, node.column or 1
            return ir.Span(file=self.file, line=line, column=col,
                           end_line=node.end_line or line, end_column=node.end_column or col + 1)
        m = node.meta
        if m.empty:
            return _span_at(self.file, 1, 1)
        return ir.Span(file=self.file, line=m.line, column=m.column, end_line=m.end_line, end_column=m.end_column)

    # -- file level
    def module(self, tree: Tree) -> ir.Module:
        imports: list[ir.Import] = []
        decls: list[Any] = []
        handlers: dict[str, Callable[[Tree], Any]] = {
            "surrogate": self.surrogate, "neuron": self.neuron, "rule": self.rule, "network": self.network,
        }
        for child in tree.children:
            if not isinstance(child, Tree):
                continue
            if child.data == "import_from":
                path, names = child.children
                imports.append(ir.Import(path=str(path)[1:-1], span=self.span(child),
                                         names=tuple(ir.Name(id=str(n), span=self.span(n)) for n in names.children)))
            elif child.data == "import_all":
                imports.append(ir.Import(path=str(child.children[0])[1:-1], span=self.span(child)))
            else:
                decls.append(handlers[str(child.data)](child))
        return ir.Module(file=self.file, imports=tuple(imports), declarations=tuple(decls))

    # -- expressions
    def expr(self, node: Tree | Token) -> ir.Expr:
        span = self.span(node)
        if isinstance(node, Token):  # a bare name never reaches here; kept for safety of types
            return ir.Name(id=str(node), span=span)
        kind = node.data
        if kind == "quantity":
            number, unit = node.children
            return ir.Num(value=self.number(number), unit=str(unit) if unit is not None else None, span=span)
        if kind == "name":
            return ir.Name(id=str(node.children[0]), span=span)
        if kind == "call":
            fn, *args = node.children
            return ir.Call(fn=str(fn), args=tuple(self.expr(a) for a in args if a is not None), span=span)
        if kind in _BINOPS:
            left, right = node.children
            return ir.BinOp(op=_BINOPS[kind], left=self.expr(left), right=self.expr(right), span=span)  # type: ignore[arg-type]
        if kind == "neg":
            return ir.Neg(operand=self.expr(node.children[0]), span=span)
        if kind == "unary":  # unary plus
            return self.expr(node.children[0])
        raise AssertionError(f"unexpected expression node {kind}")

    def number(self, tok: Token | Tree) -> float:
        """A number literal's value; one past the largest float is a diagnostic (and 0)."""
        value = float(str(tok))
        if math.isinf(value):
            self.diags.error(f"the number {_shorten(str(tok))} is too large", self.span(tok),
                             "numbers are 64-bit floats, at most about 1.8e308 (and 3.4e38 where a module "
                             "stores them in float32)")
            return 0.0
        return value

    def integer(self, tok: Token | Tree, what: str) -> int:
        """An integer literal's value; one past `MAX_INT` is a diagnostic (and 1)."""
        digits = str(tok).lstrip("0") or "0"
        if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
            self.diags.error(f"{what} {_shorten(str(tok))} is too large", self.span(tok), f"at most {MAX_INT}")
            return 1
        return int(digits)

    def args(self, node: Tree | None) -> tuple[ir.Arg, ...]:
        if node is None:
            return ()
        return tuple(ir.Arg(name=str(a.children[0]), value=self.expr(a.children[1]), span=self.span(a))
                     for a in node.children)

    # -- surrogates
    def surrogate(self, node: Tree) -> ir.Surrogate:
        name, arg, hyper, form, expr = node.children
        return ir.Surrogate(name=str(name), arg=str(arg), hyper=self.args(hyper), form=str(form),  # type: ignore[arg-type]
                            expr=self.expr(expr), span=self.span(name))

    # -- statements shared by neurons and rules
    def param(self, node: Tree) -> ir.Param:
        name, default, learnable, per, _neuron, in_kw, low, high = node.children
        return ir.Param(name=str(name), default=self.expr(default), learnable=learnable is not None,
                        per_neuron=per is not None, low=self.expr(low) if in_kw else None,
                        high=self.expr(high) if in_kw else None, span=self.span(name))

    def equation(self, node: Tree) -> ir.Equation:
        head, rhs = node.children
        if node.data == "ode":
            var = str(head).split("/")[0].strip()[1:]
            return ir.Equation(var=var, form="ode", rhs=self.expr(rhs), span=self.span(head))
        return ir.Equation(var=str(head), form="discrete", rhs=self.expr(rhs), span=self.span(head))

    def block(self, node: Tree) -> tuple[ir.Assign, ...]:
        return tuple(ir.Assign(var=str(a.children[0]), op=str(a.children[1]), value=self.expr(a.children[2]),  # type: ignore[arg-type]
                               span=self.span(a.children[0])) for a in node.children)

    def _once(self, seen: dict[str, Tree], key: str, node: Tree, what: str) -> bool:
        if key in seen:
            first = seen[key]
            self.diags.error(f"{what} is given twice", self.span(node),
                             f"the first one is on line {self.span(first).line}; keep one")
            return False
        seen[key] = node
        return True

    # -- neurons
    def neuron(self, node: Tree) -> ir.Neuron:
        name, *stmts = node.children
        fields: dict[str, list[Any]] = {"params": [], "states": [], "inputs": [], "lets": [], "equations": []}
        single: dict[str, Any] = {}
        seen: dict[str, Tree] = {}
        for st in stmts:
            kind = st.data
            if kind == "param":
                fields["params"].append(self.param(st))
            elif kind == "state":
                fields["states"].append(ir.State(name=str(st.children[0]), init=self.expr(st.children[1]),
                                                 span=self.span(st.children[0])))
            elif kind == "input_decl":
                n, default = st.children
                value = self.expr(default) if default is not None else None
                fields["inputs"].append(ir.Input(name=str(n), default=value, span=self.span(n)))
            elif kind == "let":
                fields["lets"].append(ir.Let(name=str(st.children[0]), expr=self.expr(st.children[1]),
                                             span=self.span(st.children[0])))
            elif kind in ("ode", "discrete"):
                fields["equations"].append(self.equation(st))
            elif kind == "method" and self._once(seen, "method", st, "`method`"):
                single["method"] = st.children[0]
            elif kind == "refractory" and self._once(seen, "refractory", st, "`refractory`"):
                single["refractory"] = self.expr(st.children[0])
            elif kind == "spike" and self._once(seen, "spike", st, "`spike when`"):
                single["spike"] = self.spike(st)
            elif kind == "on_spike" and self._once(seen, "on_spike", st, "`on spike`"):
                with_grad, block = st.children
                single["on_spike"] = ir.OnSpike(with_gradient=with_grad is not None, body=self.block(block),
                                                span=self.span(st))
        method = single.pop("method", None)
        if method is not None:
            if str(method) in ("exact", "exponential_euler", "euler", "rk4"):
                single["method"] = str(method)
            else:
                self.diags.error(f"unknown integration method '{method}'", self.span(method),
                                 "use one of exact, exponential_euler, euler, rk4")
        blocks: dict[str, Any] = {k: tuple(v) for k, v in fields.items()}
        return ir.Neuron(name=str(name), span=self.span(name), **blocks, **single)

    def spike(self, node: Tree) -> ir.Spike:
        lhs, op, rhs, kw, sname, sargs = node.children
        if kw is None:
            ref = ir.SurrogateRef(name="atan", args=(ir.Arg(name="alpha", value=ir.Num(value=2)),))
        else:
            ref = ir.SurrogateRef(name=str(sname), args=self.args(sargs), span=self.span(sname))
        return ir.Spike(lhs=self.expr(lhs), op=str(op), rhs=self.expr(rhs), surrogate=ref, span=self.span(node))  # type: ignore[arg-type]

    # -- rules
    def rule(self, node: Tree) -> ir.Rule:
        name, *stmts = node.children
        params, states, mods, eqs, events, clips = [], [], [], [], [], []
        seen: dict[str, Tree] = {}
        for st in stmts:
            kind = st.data
            if kind == "param":
                params.append(self.param(st))
            elif kind == "rule_state":
                scope, n, init = st.children
                states.append(ir.State(name=str(n), init=self.expr(init), scope=str(scope), span=self.span(n)))  # type: ignore[arg-type]
            elif kind == "modulator":
                mods.append(st.children[0])
            elif kind in ("ode", "discrete"):
                eqs.append(self.equation(st))
            elif kind == "on_event":
                event, block = st.children
                if self._once(seen, str(event), st, f"`on {event}`"):
                    events.append(ir.OnEvent(event=str(event), body=self.block(block), span=self.span(st)))  # type: ignore[arg-type]
            elif kind == "clip":
                var, low, high = st.children
                clips.append(ir.Clip(var=str(var), low=self.expr(low), high=self.expr(high), span=self.span(var)))
        return ir.Rule(name=str(name), params=tuple(params), states=tuple(states),
                       modulators=tuple(str(m) for m in mods), equations=tuple(eqs),
                       on_events=tuple(events), clips=tuple(clips), span=self.span(name))

    # -- networks
    def network(self, node: Tree) -> ir.Network:
        name, *stmts = node.children
        inputs: list[ir.NetInput] = []
        layers: list[ir.Layer] = []
        paths: list[ir.Path] = []
        outputs: list[ir.Output] = []
        single: dict[str, Any] = {}
        seen: dict[str, Tree] = {}
        for st in stmts:
            kind = st.data
            if kind == "net_dt" and self._once(seen, "dt", st, "`dt`"):
                single["dt"] = self.expr(st.children[0])
            elif kind == "net_steps" and self._once(seen, "steps", st, "`steps`"):
                single["steps"] = self.integer(st.children[0], "`steps`")
            elif kind == "net_input":
                n, shape, enc, eargs = st.children
                enc_name = str(enc)
                if enc_name not in ("direct", "rate", "latency", "delta", "none"):
                    self.diags.error(f"unknown encoding '{enc_name}'", self.span(enc),
                                     "use one of direct, rate, latency, delta, none")
                    enc_name = "direct"
                inputs.append(ir.NetInput(name=str(n), shape=self.shape(shape), span=self.span(n),
                                          encoding=ir.Encoding(name=enc_name, args=self.args(eargs),  # type: ignore[arg-type]
                                                               span=self.span(enc))))
            elif kind == "layer":
                n, neuron, overrides, shape = st.children
                layers.append(ir.Layer(name=str(n), neuron=str(neuron), overrides=self.args(overrides),
                                       shape=self.shape(shape) if shape is not None else None, span=self.span(n)))
            elif kind == "path":
                paths.append(self.path(st))
            elif kind == "output":
                outputs.extend(self.output(o) for o in st.children)
            elif kind == "train" and self._once(seen, "train", st, "`train`"):
                single["train"] = self.train(st)
        return ir.Network(name=str(name), inputs=tuple(inputs), layers=tuple(layers), paths=tuple(paths),
                          outputs=tuple(outputs), span=self.span(name), **single)

    def shape(self, node: Tree) -> tuple[int, ...]:
        return tuple(self.integer(t, "the size") for t in node.children)

    def endpoint(self, node: Tree) -> ir.Endpoint:
        name, var = node.children
        return ir.Endpoint(name=str(name), var=str(var) if var is not None else None, span=self.span(node))

    def path(self, node: Tree) -> ir.Path:
        children = list(node.children)
        learn_args = children.pop()
        learn_name = children.pop()
        _learn_kw = children.pop()
        frozen = children.pop()
        src, *items = children
        *middle, last = items
        ops = []
        for item in middle:
            if item.data == "endpoint":
                self.diags.error(f"'{item.children[0]}.{item.children[1]}' in the middle of a path",
                                 self.span(item), "only the last element of a path names a layer input")
                continue
            ops.append(self.op(item))
        if last.data == "op":
            op_name, op_args = last.children
            if op_args is not None:
                self.diags.error(f"a path must end in a layer, not in the op '{op_name}(...)'", self.span(last),
                                 "add `-> LAYER` at the end")
            dst = ir.Endpoint(name=str(op_name), span=self.span(last))
        else:
            dst = self.endpoint(last)
        learn = None
        if learn_name is not None:
            learn = ir.RuleRef(name=str(learn_name), args=self.args(learn_args), span=self.span(learn_name))
        return ir.Path(src=self.endpoint(src), ops=tuple(ops), dst=dst, frozen=frozen is not None, learn=learn,
                       span=self.span(node))

    def op(self, node: Tree) -> ir.Op:
        name, op_args = node.children
        args: list[ir.Expr] = []
        kwargs: list[ir.Arg] = []
        for a in (op_args.children if op_args is not None else []):
            if isinstance(a, Tree) and a.data == "arg":
                kwargs.append(ir.Arg(name=str(a.children[0]), value=self.expr(a.children[1]), span=self.span(a)))
            else:
                if kwargs:
                    self.diags.error("a positional argument follows a keyword argument", self.span(a),
                                     "put positional arguments first")
                args.append(self.expr(a))
        return ir.Op(name=str(name), args=tuple(args), kwargs=tuple(kwargs), span=self.span(node))

    def output(self, node: Tree) -> ir.Output:
        alias, layer, var, readout = node.children
        name = str(alias) if alias is not None else f"{layer}_{var}"
        if str(readout) not in ("count", "rate", "last", "max", "trace"):
            self.diags.error(f"unknown readout '{readout}'", self.span(readout),
                             "use one of count, rate, last, max, trace")
            readout = "count"
        return ir.Output(name=name, layer=str(layer), var=str(var), readout=cast(Any, str(readout)),
                         span=self.span(node))

    def train(self, node: Tree) -> ir.Train:
        fields: dict[str, Any] = {}
        seen: dict[str, Tree] = {}
        for st in node.children:
            key = str(st.data).removeprefix("train_")
            if not self._once(seen, key, st, f"`{key}`"):
                continue
            if key in ("loss", "optimizer"):
                n, args = st.children
                fields[key] = ir.RuleRef(name=str(n), args=self.args(args), span=self.span(n))
            else:
                fields[key] = self.integer(st.children[0], f"`{key}`")
        return ir.Train(span=self.span(node), **fields)
