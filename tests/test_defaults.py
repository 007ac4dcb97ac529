"""Every default lives once, in a dataclass of asr/config.py: the CLI and public signatures only refer to it.

Two walks: every option of every ``asr`` subcommand (argparse defaults are None and the help text
shows the dataclass value), and every public function or method of the package (a parameter named
like a config field never repeats a literal, and its default equals the dataclass value).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

from asr import config
from asr.cli import _build_parser

PACKAGE = Path(config.__file__).parent
CONFIGS = [c for c in vars(config).values()
           if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == config.__name__]


def _field_defaults() -> dict[str, list]:
    """Field name -> the defaults of every config field of that name (nested sections left out)."""
    found: dict[str, list] = {}
    for cls in CONFIGS:
        instance = cls()
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if not dataclasses.is_dataclass(value):
                found.setdefault(f.name, []).append(value)
    return found


FIELDS = _field_defaults()


def _parsers(parser: argparse.ArgumentParser, name: str = "asr"):
    """(command name, parser) for the parser and every subcommand below it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _options():
    for command, parser in _parsers(_build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                yield command, action


OPTIONS = list(_options())


def _option_id(item) -> str:
    command, action = item
    return f"{command} {action.option_strings[0] if action.option_strings else action.dest}"


@pytest.mark.parametrize("item", OPTIONS, ids=_option_id)
def test_cli_defaults_are_none_and_come_from_the_dataclasses(item):
    command, action = item
    assert action.default in (None, argparse.SUPPRESS), (
        f"{_option_id(item)}: argparse default {action.default!r}; use None and the config dataclass")
    source = getattr(action, "config_default", None)
    if action.dest in FIELDS and action.option_strings:
        assert source is not None, f"{_option_id(item)}: names config field {action.dest!r}, but is not read from it"
    if source is not None:
        cls, name = source
        value = getattr(cls(), name)
        if value is None:  # nothing to show: the option is off unless given
            return
        shown = " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        assert f"default: {shown}" in (action.help or ""), f"{_option_id(item)}: help does not show {shown!r}"


def test_every_subcommand_is_walked():
    commands = {command for command, _ in OPTIONS}
    for expected in ("asr decode", "asr transcribe", "asr tune", "asr prepare an4", "asr prepare timit",
                     "asr prepare librispeech", "asr download librispeech", "asr score compare", "asr lm build"):
        assert expected in commands
    assert len(OPTIONS) > 80


def _is_literal(node: ast.expr) -> bool:
    """A constant other than None, or a tuple/list/negation of constants."""
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_literal(e) for e in node.elts)
    return False


def _is_property(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d).endswith(("property", ".setter")) for d in fn.decorator_list)


def _public_functions():
    """(module name, qualified name, ast function) for public functions and methods of public classes."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == "asr.config":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield module, node.name, node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if (isinstance(item, ast.FunctionDef) and not _is_property(item)
                            and (not item.name.startswith("_") or item.name == "__init__")):
                        yield module, f"{node.name}.{item.name}", item


FUNCTIONS = list(_public_functions())


def _defaults(fn: ast.FunctionDef) -> list[tuple[str, ast.expr]]:
    args = fn.args
    positional = args.posonlyargs + args.args
    pairs = list(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
    pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return pairs


# parameters that share a config field's name but not its meaning
UNRELATED = {("asr.scoring.align", "align_batch", "batch_size"): "alignment pairs per vectorised call, not segments"}


def test_no_public_signature_repeats_a_config_literal():
    repeated = []
    for module, name, fn in FUNCTIONS:
        for arg, default in _defaults(fn):
            if arg in FIELDS and _is_literal(default) and (module, name, arg) not in UNRELATED:
                value = ast.literal_eval(default)
                verdict = "duplicates" if value in FIELDS[arg] else "disagrees with"
                repeated.append(f"{module}.{name}({arg}={ast.unparse(default)}) {verdict} the config default "
                                f"{FIELDS[arg]}")
    assert not repeated, "literal defaults of config fields:\n" + "\n".join(repeated)


def _config_reference(node: ast.expr) -> bool:
    """``SomeConfig.field``: the default read from a config dataclass."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        node.value.id in {c.__name__ for c in CONFIGS}


def test_signature_defaults_equal_the_dataclass_values():
    """Defaults that are neither literals nor ``SomeConfig.field`` (module constants, expressions)
    must still equal the config value of their name."""
    wrong = []
    for module, name, fn in FUNCTIONS:
        references = {arg for arg, default in _defaults(fn) if _config_reference(default)}
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        for param in inspect.signature(obj).parameters.values():
            value = param.default
            if (param.name in FIELDS and param.name not in references and (module, name, param.name) not in UNRELATED
                    and isinstance(value, (int, float, str, tuple)) and value not in FIELDS[param.name]):
                wrong.append(f"{module}.{name}({param.name}={value!r}): config says {FIELDS[param.name]}")
    assert not wrong, "\n".join(wrong)


def test_the_checks_can_fail():
    """The literal check sees a repeated beam size, and the walk finds the decoding functions."""
    fn = ast.parse("def f(x, beam_size=16, *, nbest=SearchConfig.nbest): pass").body[0]
    flagged = [arg for arg, default in _defaults(fn) if arg in FIELDS and _is_literal(default)]
    assert flagged == ["beam_size"]
    names = {name for _, name, _ in FUNCTIONS}
    assert {"BeamSearch.__init__", "decode_cuts", "tune", "Recognizer.from_pretrained"} <= names
