"""`trainer-console --help` and each subcommand's describe every option."""

from __future__ import annotations

import argparse

import pytest

from app.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_has_a_summary():
    # given
    parser = build_parser()
    # when
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    # then
    helped = {choice.dest for choice in action._choices_actions if choice.help}
    assert helped == set(_subparsers(parser))


@pytest.mark.parametrize("command", sorted(_subparsers(build_parser())))
def test_every_option_of_a_subcommand_has_help_text(command, capsys):
    # given
    subparser = _subparsers(build_parser())[command]
    # when
    options = [a for a in subparser._actions if a.option_strings and a.dest != "help"]
    # then
    assert [a.dest for a in options if not a.help] == []
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    shown = capsys.readouterr().out
    for option in options:
        assert option.help is not None and option.help.split()[0] in shown
