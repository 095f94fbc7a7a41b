"""Every subcommand's own flags parse into its own arguments: none is swallowed by a flag of a
parent parser (the top-level --version once took `cards show --version N`)."""
import argparse

from fmeval.cli import parser as top_parser
from fmeval.cli import run as run_command


def _subparsers(parser):
    return [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]


def _leaves(parser, path=()):
    """(path of command words, parser) for each command that takes no further subcommand."""
    subs = _subparsers(parser)
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, path + (name,))


def _value(action):
    """A command-line value for an action, and what the namespace should then hold."""
    if action.choices:
        choice = next(iter(action.choices))
        return [str(choice)], ([choice] if isinstance(action, argparse._AppendAction) else choice)
    if isinstance(action, argparse.BooleanOptionalAction):
        return [], True
    if action.nargs == 0:
        return [], action.const
    for text in ("7", "0.5", "a,b", "x=1"):  # the first that the flag's type takes
        try:
            value = action.type(text) if callable(action.type) else text
            break
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            continue
    if action.nargs in ("+", "*"):
        value = [value]
    return [text], ([value] if isinstance(action, argparse._AppendAction) else value)


def _required(parser, skip):
    words = []
    for action in parser._actions:
        if action is skip or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.option_strings and action.nargs != "?" and action.nargs != "*":
            words += _value(action)[0] or ["7"]
        elif action.option_strings and action.required:
            words += [action.option_strings[0], *_value(action)[0]]
    return words


def _flags(parser):
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_each_subcommand_flag_parses_into_its_own_argument():
    top, _ = top_parser()
    checked = 0
    for path, leaf in _leaves(top):
        for action in _flags(leaf):
            words, expected = _value(action)
            args = top.parse_args([*path, *_required(leaf, action), action.option_strings[0], *words])
            assert getattr(args, action.dest) == expected, (path, action.option_strings)
            assert args.show_version is False, (path, action.option_strings)  # never read as fmeval's --version
            checked += 1
    assert checked > 100  # the walk reached the commands' flags


def test_the_run_command_flags_parse_too():
    run = run_command.parser()
    for action in _flags(run):
        words, expected = _value(action)
        args = run.parse_args([*_required(run, action), action.option_strings[0], *words])
        assert getattr(args, action.dest) == expected, action.option_strings


def test_no_subcommand_flag_shares_a_destination_with_a_parent_parser():
    top, _ = top_parser()
    parents = {a.dest for a in _flags(top)}

    def walk(parser, inherited, path):
        for sub in _subparsers(parser):
            for name, child in sub.choices.items():
                # a flag accepted at two levels must leave the parent's value alone unless given (SUPPRESS)
                own = {a.dest for a in _flags(child) if a.default is not argparse.SUPPRESS}
                assert not own & inherited, (path + (name,), own & inherited)
                walk(child, inherited | own, path + (name,))

    walk(top, parents, ())
