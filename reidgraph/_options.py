"""Command-line options made from the fields of a settings dataclass.

A setting's default lives in its dataclass and its meaning in the class's
docstring (``Attributes:`` or ``Args:``, or a base class's); the CLI takes
both from there instead of restating them.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing

_ENTRY = re.compile(r"^ {4}(\w+(?:, \w+)*): (.*)$")
_ROLE = re.compile(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`")  # :class:`~a.b.C` -> C
_LITERAL = re.compile(r"``(.+?)``")
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z(])")
_TYPES = (int, float, str)


def field_docs(cls: type) -> dict[str, str]:
    """The first sentence of each field's entry in the docstrings of ``cls`` and its bases, as plain text."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_entries(klass.__dict__.get("__doc__") or ""))
    return docs


def _entries(doc: str) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:``/``Args:`` section of a docstring (``a, b: text`` names two)."""
    entries: dict[str, list[str]] = {}
    inside, current = False, []
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() in ("Attributes:", "Args:"):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            match = _ENTRY.match(line)
            if match:
                current = [match[2]]
                entries.update({name: current for name in match[1].split(", ")})
            else:
                current.append(line.strip())
    return {name: _plain(" ".join(words)) for name, words in entries.items()}


def _plain(text: str) -> str:
    """RST text as a plain first sentence: roles and literals lose their markup; ``None`` is an option not given."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text.replace("``None``", "not given")))
    return _SENTENCE_END.split(text)[0].rstrip(".")


class Options:
    """Some fields of the settings dataclass ``cls`` as command-line options.

    Each field ``name`` becomes ``--name`` (underscores as dashes) unless
    ``flags`` names another flag; its type is the field's, and its help the
    docstring's entry for it.

    Example::

        FEN = Options(FENTrainConfig, "arch", "lr", epochs="--epochs-fen")
        FEN.add(parser, FENTrainConfig())   # --arch, --lr, --epochs-fen with the class's defaults
        config = FENTrainConfig(**FEN.given(parser.parse_args()))
    """

    def __init__(self, cls: type, *names: str, **flags: str):
        self.cls = cls
        self.flags = {name: "--" + name.replace("_", "-") for name in names} | flags
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = [name for name in self.flags if name not in fields]
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")

    def add(self, parser, defaults: object | None = None, *, shown: str | None = "{}", prefix: str = "",
            **extra) -> None:
        """Add the options to ``parser`` (a parser or an argument group).

        Args:
            defaults: settings whose values become the options' defaults; ``None``:
                every option defaults to ``None`` (not given; see :meth:`given`).
            shown: how the help states a default: a format string of the default
                (of ``defaults``, or else of the class), e.g. ``"the preset's; paper {}"``;
                ``None`` states none. Defaults that are ``None`` are never stated.
            prefix: put before each help text, e.g. ``"hnsw: "``.
            extra: further keyword arguments of ``add_argument`` (e.g. ``metavar``).
        """
        docs, hints = field_docs(self.cls), typing.get_type_hints(self.cls)
        reference = defaults if defaults is not None else self.cls()
        for name, flag in self.flags.items():
            if name not in docs:
                raise TypeError(f"{self.cls.__name__}'s docstring does not describe {name}; add it under Attributes:")
            value = getattr(reference, name)
            stated = f" (default: {shown.format(value)})" if shown is not None and value is not None else ""
            parser.add_argument(flag, dest=_dest(flag), type=_type(self.cls, name, hints[name]),
                                default=value if defaults is not None else None,
                                help=(prefix + docs[name] + stated).replace("%", "%%"), **extra)

    def given(self, args: argparse.Namespace) -> dict:
        """The fields whose options have a value (given, or defaulted by :meth:`add`), by field name."""
        values = {name: getattr(args, _dest(flag)) for name, flag in self.flags.items()}
        return {name: value for name, value in values.items() if value is not None}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _type(cls: type, name: str, hint) -> type:
    """The command-line type of a field: its annotation, without ``None``."""
    kinds = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    if len(kinds) != 1 or kinds[0] not in _TYPES:
        raise TypeError(f"{cls.__name__}.{name}: {hint} has no command-line type; use one of int, float, str")
    return kinds[0]
