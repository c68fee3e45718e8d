import argparse
from dataclasses import dataclass

import pytest

from reidgraph._options import Options, field_docs


@dataclass
class Base:
    """Shared settings.

    Attributes:
        seed: seed of everything. The same seed gives the same result.
    """

    seed: int = 0


@dataclass
class Settings(Base):
    """Made-up settings.

    Attributes:
        size: graph size, see :class:`~reidgraph.nn.FFGNN` and ``K + 1``
            (eq. 8). Later sentences are left out.
        low, high: bounds in percent.
        name: an optional name (``None``: no name).
    """

    size: int = 150
    low: float = 0.5
    high: float = 1.0
    name: str | None = None
    flags: tuple[str, ...] = ()


def test_field_docs_read_first_sentences_of_the_class_and_its_bases_as_plain_text():
    assert field_docs(Settings) == {"seed": "seed of everything", "low": "bounds in percent",
                                    "high": "bounds in percent", "name": "an optional name (not given: no name)",
                                    "size": "graph size, see FFGNN and K + 1 (eq. 8)"}


def test_options_take_type_default_and_help_from_the_dataclass():
    parser = argparse.ArgumentParser()
    options = Options(Settings, "size", "seed", low="--lower")
    options.add(parser, Settings(size=7))
    help_text = " ".join(parser.format_help().split())
    assert "--size SIZE graph size, see FFGNN and K + 1 (eq. 8) (default: 7)" in help_text
    assert "--lower LOWER bounds in percent (default: 0.5)" in help_text
    args = parser.parse_args(["--size", "9", "--lower", "0.25"])
    assert options.given(args) == {"size": 9, "seed": 0, "low": 0.25}
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "nine"])


def test_options_without_defaults_are_given_only_when_passed():
    parser = argparse.ArgumentParser()
    options = Options(Settings, "size", "name")
    options.add(parser, shown="the preset's; paper {}", prefix="graph: ")
    help_text = " ".join(parser.format_help().split())
    assert "(default: the preset's; paper 150)" in help_text
    assert help_text.endswith("--name NAME graph: an optional name (not given: no name)")  # None is not stated
    assert options.given(parser.parse_args([])) == {}
    assert options.given(parser.parse_args(["--name", "x"])) == {"name": "x"}


def test_options_refuse_unknown_undocumented_or_untyped_fields():
    with pytest.raises(TypeError, match="no field"):
        Options(Settings, "sizes")
    with pytest.raises(TypeError, match="does not describe flags"):
        Options(Settings, "flags").add(argparse.ArgumentParser())


def test_options_refuse_a_field_without_a_command_line_type():
    @dataclass
    class Listed:
        """Settings with a tuple.

        Attributes:
            losses: the losses.
        """

        losses: tuple[str, ...] = ("list",)

    with pytest.raises(TypeError, match="Listed.losses.*no command-line type"):
        Options(Listed, "losses").add(argparse.ArgumentParser())
