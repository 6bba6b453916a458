"""Clip-selection expressions (`actrec-etl query`, `fit --train-where/--val-where`, `evaluate --where`),
parsed and evaluated here, never by `DataFrame.query`.

Expressions arrive from the command line, params.yaml and `dvc exp run -S`, so they are input, not code.
`DataFrame.query` resolves `@name` against the caller's globals and lets an expression call anything it can
reach (`@pd.io.common.os.system(...)`). Here an expression is parsed with Python's `ast` and every node is
checked against a small grammar before anything is evaluated:

- column names (bare, or in backticks for names that are not identifiers), `index`;
- literals: numbers, strings, True/False/None, and lists/tuples of them (for `in` and `isin`);
- comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, chained), `in` / `not in`;
- boolean logic: `and`, `or`, `not`, `&`, `|`, `~` (element-wise, as in pandas);
- arithmetic: `+ - * / // % **` on numbers and columns (`+` also joins strings);
- the column methods in `METHODS` (`label_name.str.contains('wave')`, `subject.isin([1, 2])`,
  `n_frames.between(30, 60)`, `split.isna()`...), with literal arguments only.

Everything else (`@` locals, any other attribute or call, subscripts, lambdas, comprehensions, dunders) is
refused with a one-line ActrecError before the table is touched. The result is the boolean mask pandas would
compute for the same expression; missing values (NaN/None/NA) in the mask select nothing.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
import warnings

import numpy as np
import pandas as pd

from etl.common.errors import ActrecError, ActrecWarning

MAX_LENGTH = 2000  # characters: a selection is a line, not a program
MAX_DEPTH = 64  # nesting of the parsed tree (keeps the evaluator's recursion far from Python's limit)
MAX_POWER = 64  # the largest exponent in `a ** b`: 10 ** 10 ** 10 would be a CPU and memory bomb

# method -> keyword arguments it accepts; `str.` methods are reached through a column's `.str`
METHODS: dict[str, frozenset[str]] = {
    "isin": frozenset({"values"}),
    "between": frozenset({"left", "right", "inclusive"}),
    "isna": frozenset(),
    "notna": frozenset(),
    "isnull": frozenset(),
    "notnull": frozenset(),
    "abs": frozenset(),
}
STR_METHODS: dict[str, frozenset[str]] = {
    "contains": frozenset({"pat", "case", "regex", "na"}),
    "startswith": frozenset({"pat", "na"}),
    "endswith": frozenset({"pat", "na"}),
    "fullmatch": frozenset({"pat", "case", "na"}),
    "match": frozenset({"pat", "case", "na"}),
    "lower": frozenset(),
    "upper": frozenset(),
    "strip": frozenset(),
    "len": frozenset(),
}

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_BACKTICK_PREFIX = "actrec_backtick_"


class _Refused(Exception):
    """An expression outside the grammar; the message says which part."""


def select(df: pd.DataFrame, expr: str) -> pd.DataFrame:
    """The rows of `df` for which `expr` holds; ActrecError naming the expression for anything else."""
    mask = evaluate_mask(df, expr)
    return df[mask]


def evaluate_mask(df: pd.DataFrame, expr: str) -> pd.Series:
    """The boolean mask (aligned with df.index) of a checked clip-selection expression."""
    if not isinstance(expr, str):
        raise ActrecError(f"a clip query must be text, found {type(expr).__name__}")
    columns_hint = f"Columns: {', '.join(map(str, df.columns))}"
    try:
        tree, backticks = parse(expr)
        value = _Evaluator(df, backticks).eval(tree.body)
    except _Refused as exc:
        raise ActrecError(f"bad clip query {expr!r}: {exc}. {columns_hint}") from None
    except ActrecError:
        raise
    except Exception as exc:  # pandas/numpy raise many types for a well-formed but unsuitable expression
        raise ActrecError(
            f"bad clip query {expr!r}: {type(exc).__name__}: {_first_line(exc)}. {columns_hint}"
        ) from None
    return _as_mask(value, df, expr)


def check(expr: str) -> None:
    """Raise ActrecError when `expr` is not in the grammar (no table needed: for checking settings early)."""
    try:
        parse(expr)
    except _Refused as exc:
        raise ActrecError(f"bad clip query {expr!r}: {exc}") from None


def parse(expr: str) -> tuple[ast.Expression, dict[str, str]]:
    """The checked tree of `expr` and the column names written in backticks (by placeholder name)."""
    if len(expr) > MAX_LENGTH:
        raise _Refused(f"longer than {MAX_LENGTH} characters")
    source, backticks = _replace_backticks(expr)
    _refuse_at_sign(source)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise _Refused(f"not a valid expression ({exc.msg})") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise _Refused(f"not a valid expression ({type(exc).__name__})") from None
    _check_tree(tree.body, 0)
    return tree, backticks


def _replace_backticks(expr: str) -> tuple[str, dict[str, str]]:
    """pandas writes `a column name` in backticks; Python cannot parse them, so each becomes a placeholder name.
    Quotes are tracked so a backtick inside a string literal stays text."""
    out, names, quote, i = [], {}, None, 0
    while i < len(expr):
        ch = expr[i]
        if quote is not None:
            out.append(ch)
            if ch == "\\" and i + 1 < len(expr):
                out.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "`":
            end = expr.find("`", i + 1)
            if end < 0:
                raise _Refused("a backtick-quoted column name is not closed")
            placeholder = f"{_BACKTICK_PREFIX}{len(names)}"
            names[placeholder] = expr[i + 1 : end]
            out.append(f" {placeholder} ")
            i = end
        else:
            out.append(ch)
        i += 1
    return "".join(out), names


def _refuse_at_sign(source: str) -> None:
    """`@name` reads the caller's variables in DataFrame.query; here it is refused by name, before parsing
    (Python would read it as matrix multiplication)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return  # the parser reports the syntax error
    if any(tok.type == tokenize.OP and tok.string in ("@", "@=") for tok in tokens):
        raise _Refused("'@' (local variables) is not allowed: write the value itself")


def _check_tree(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.BoolOp):
        children = node.values
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.Invert | ast.USub | ast.UAdd):
            raise _Refused(f"the operator {type(node.op).__name__} is not allowed")
        children = [node.operand]
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, ast.BitAnd | ast.BitOr) and type(node.op) not in _ARITHMETIC:
            raise _Refused(f"the operator {type(node.op).__name__} is not allowed")
        children = [node.left, node.right]
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE and not isinstance(op, ast.In | ast.NotIn):
                raise _Refused(f"the comparison {type(op).__name__} is not allowed")
        children = [node.left, *node.comparators]
    elif isinstance(node, ast.Name):
        if node.id.startswith("__") or (node.id.startswith("_") and node.id.endswith("_")):
            raise _Refused(f"the name {node.id!r} is not allowed")
        children = []
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, bool | int | float | str) and node.value is not None:
            raise _Refused(f"the literal {node.value!r} is not allowed")
        children = []
    elif isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            if not _is_literal(element):
                raise _Refused("lists may only hold literal values (numbers, strings, True/False/None)")
        children = []
    elif isinstance(node, ast.Call):
        _check_call(node)
        children = [node.func.value.value if _is_str_method(node.func) else node.func.value]
        children += [*node.args, *(k.value for k in node.keywords)]
    elif isinstance(node, ast.Attribute):
        raise _Refused(
            f"attribute access '.{node.attr}' is not allowed (only the column methods "
            f"{', '.join(sorted(METHODS))} and .str.{', .str.'.join(sorted(STR_METHODS))})"
        )
    else:
        raise _Refused(f"{_node_name(node)} is not allowed in a clip query")
    for child in children:
        _check_tree(child, depth + 1)


def _check_call(node: ast.Call) -> None:
    func = node.func
    if not isinstance(func, ast.Attribute):
        name = func.id if isinstance(func, ast.Name) else _node_name(func)
        raise _Refused(f"calling {name!r} is not allowed (only column methods such as x.isin([...]))")
    if _is_str_method(func):
        allowed, method = STR_METHODS, f"str.{func.attr}"
        keywords = allowed.get(func.attr)
    else:
        allowed, method = METHODS, func.attr
        keywords = allowed.get(func.attr)
        if isinstance(func.value, ast.Attribute) and func.value.attr == "str":
            keywords = None
    if keywords is None:
        raise _Refused(
            f"the method {method!r} is not allowed; allowed: {', '.join(sorted(METHODS))}, "
            f"str.{', str.'.join(sorted(STR_METHODS))}"
        )
    for arg in [*node.args, *(k.value for k in node.keywords)]:
        if not _is_literal(arg) and not (
            isinstance(arg, ast.List | ast.Tuple) and all(_is_literal(e) for e in arg.elts)
        ):
            raise _Refused(f"arguments of {method}() must be literal values")
    for keyword in node.keywords:
        if keyword.arg is None or keyword.arg not in keywords:
            shown = ", ".join(sorted(keywords)) or "none"
            raise _Refused(f"{method}() takes no keyword {keyword.arg!r} here (allowed: {shown})")


def _is_str_method(func: ast.AST) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "str"
        and func.attr in STR_METHODS
    )


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _is_literal(node.operand) and isinstance(node.operand, ast.Constant)
    return isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, bool | int | float | str)
    )


def _node_name(node: ast.AST) -> str:
    names = {
        "Subscript": "indexing ([...])",
        "Lambda": "lambda",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "SetComp": "a comprehension",
        "DictComp": "a comprehension",
        "Dict": "a dict",
        "Set": "a set literal",
        "IfExp": "'x if c else y'",
        "NamedExpr": "':='",
        "JoinedStr": "an f-string",
        "Starred": "'*'",
        "Await": "await",
        "Yield": "yield",
    }
    return names.get(type(node).__name__, type(node).__name__)


class _Evaluator:
    """Evaluates a tree that `_check_tree` accepted; values are Series (columns) or Python scalars."""

    def __init__(self, df: pd.DataFrame, backticks: dict[str, str]):
        self.df, self.backticks = df, backticks

    def eval(self, node: ast.AST):
        method = getattr(self, f"_{type(node).__name__}")
        return method(node)

    def _Name(self, node: ast.Name):
        name = self.backticks.get(node.id, node.id)
        if name in self.df.columns:
            return self.df[name]
        if name == "index":
            return pd.Series(self.df.index, index=self.df.index)
        raise _Refused(f"unknown column {name!r}")

    def _Constant(self, node: ast.Constant):
        return node.value

    def _List(self, node: ast.List | ast.Tuple):
        return [self.eval(e) for e in node.elts]

    _Tuple = _List

    def _UnaryOp(self, node: ast.UnaryOp):
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not | ast.Invert):
            return ~_boolean(value) if isinstance(value, pd.Series) else not value
        _require_number(value, "unary minus/plus")
        return -value if isinstance(node.op, ast.USub) else +value

    def _BoolOp(self, node: ast.BoolOp):
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = None
        for child in node.values:
            value = self.eval(child)
            value = _boolean(value) if isinstance(value, pd.Series) else bool(value)
            result = value if result is None else combine(result, value)
        return result

    def _BinOp(self, node: ast.BinOp):
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.BitAnd | ast.BitOr):
            left = _boolean(left) if isinstance(left, pd.Series) else bool(left)
            right = _boolean(right) if isinstance(right, pd.Series) else bool(right)
            return (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
        op = _ARITHMETIC[type(node.op)]
        if isinstance(node.op, ast.Add) and _is_text(left) and _is_text(right):
            return left + right  # joining text grows with the expression's length only
        _require_number(left, "arithmetic")
        _require_number(right, "arithmetic")
        if isinstance(node.op, ast.Pow) and not isinstance(right, pd.Series):
            _check_power(left, right)
        return op(left, right)

    def _Compare(self, node: ast.Compare):
        result, left = None, self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            value = self._compare(op, left, right)
            result = value if result is None else (result & value)
            left = right
        return result

    def _compare(self, op: ast.cmpop, left, right):
        if isinstance(op, ast.In | ast.NotIn) or (
            isinstance(op, ast.Eq | ast.NotEq) and isinstance(right, list)
        ):
            negate = isinstance(op, ast.NotIn | ast.NotEq)
            if isinstance(left, list) and isinstance(right, pd.Series):  # ['a', 'b'] == x
                left, right = right, left
            if not isinstance(left, pd.Series):
                values = right.tolist() if isinstance(right, pd.Series) else right
                if not isinstance(values, list):
                    raise _Refused("'in' needs a list or a column on its right")
                found = left in values
                return not found if negate else found
            values = right if isinstance(right, pd.Series | list) else [right]
            mask = left.isin(values)
            return ~mask if negate else mask
        if isinstance(left, list) or isinstance(right, list):
            raise _Refused("a list can only be compared with '==', '!=', 'in' or 'not in'")
        _check_text_against_number(op, left, right)
        return _COMPARE[type(op)](left, right)

    def _Call(self, node: ast.Call):
        func = node.func
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords}
        if _is_str_method(func):
            target = self.eval(func.value.value)
            if not isinstance(target, pd.Series):
                raise _Refused(f".str.{func.attr}() needs a column")
            return getattr(target.str, func.attr)(*args, **kwargs)
        target = self.eval(func.value)
        if not isinstance(target, pd.Series):
            raise _Refused(f".{func.attr}() needs a column")
        return getattr(target, func.attr)(*args, **kwargs)


def _boolean(series: pd.Series) -> pd.Series:
    """A condition as a bool Series: missing values are False (pandas' query selects nothing for them)."""
    if series.dtype == bool:
        return series
    if pd.api.types.is_bool_dtype(series.dtype) or (
        series.dtype == object and all(v is None or v != v or isinstance(v, bool | np.bool_) for v in series)
    ):
        return series.fillna(False).astype(bool)
    raise _Refused(
        f"and/or/not and & | ~ need conditions (comparisons, isin, ...), found values of type {series.dtype}"
    )


def _check_power(base, exponent) -> None:
    """`a ** b` on plain numbers is computed by Python, exactly: bound it before it runs."""
    if abs(exponent) > MAX_POWER:
        raise _Refused(f"exponents above {MAX_POWER} are not allowed")
    if isinstance(base, int) and abs(base).bit_length() * abs(exponent) > 4096:
        raise _Refused("the power is too large (more than 4096 bits)")


def _check_text_against_number(op: ast.cmpop, left, right) -> None:
    """`camera == 3` on a text column matches nothing and `speed > 1.0` cannot be computed: say why, naming the
    column (ingest stores a column as numbers only when every value is one, etl/commands/ingest.py)."""
    for column, other in ((left, right), (right, left)):
        if not (isinstance(column, pd.Series) and _is_number(other)):
            continue
        if column.dtype != object and not pd.api.types.is_string_dtype(column.dtype):
            continue
        sample = next((v for v in column if isinstance(v, str)), None)
        if sample is None:
            continue
        if isinstance(op, ast.Eq | ast.NotEq):
            warnings.warn(
                ActrecWarning(
                    f"column {column.name!r} holds text (e.g. {sample!r}), so comparing it with the number "
                    f"{other!r} is never equal; write {column.name} == '{other}' to compare text"
                ),
                stacklevel=2,
            )
        else:
            raise _Refused(
                f"column {column.name!r} holds text (e.g. {sample!r}) and cannot be ordered against the number "
                f"{other!r} (a column is numeric only when every value in it is a number)"
            )


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _is_text(value) -> bool:
    if isinstance(value, pd.Series):
        return pd.api.types.is_string_dtype(value.dtype)
    return isinstance(value, str)


def _require_number(value, what: str) -> None:
    """Arithmetic is on numbers only: `label_name * 10**9` would repeat every text 10**9 times."""
    if isinstance(value, pd.Series):
        if not pd.api.types.is_numeric_dtype(value.dtype) or pd.api.types.is_bool_dtype(value.dtype):
            raise _Refused(f"{what} needs numbers, found column {value.name!r} of type {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise _Refused(f"{what} needs numbers or columns, found {value!r}")


def _as_mask(value, df: pd.DataFrame, expr: str) -> pd.Series:
    if isinstance(value, bool | np.bool_):
        return pd.Series(bool(value), index=df.index)
    try:
        if isinstance(value, pd.Series):
            return _boolean(value)
    except _Refused:
        pass
    raise ActrecError(f"clip query {expr!r} must be a boolean condition (e.g. \"split == 'test'\")")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
