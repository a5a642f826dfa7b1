"""`google-token-operator completion bash|zsh|fish`: a completion script for the shell,
made from the argument parser itself (so it cannot fall behind): the commands, each one's
flags, and the values of flags and arguments that take a fixed set (`-o`, the shell).

zsh runs the bash script through its bashcompinit; fish gets its own `complete` lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
from collections.abc import Iterable

SHELLS = ("bash", "zsh", "fish")


@dataclasses.dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    help: str


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    words: tuple[str, ...]  # the values its positional argument takes, when fixed


def options_of(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    return tuple(
        Option(
            tuple(action.option_strings),
            action.nargs != 0,
            tuple(map(str, action.choices or ())),
            str(action.help or "") if action.help != argparse.SUPPRESS else "",
        )
        for action in parser._actions
        if action.option_strings
    )


def commands_of(parser: argparse.ArgumentParser) -> tuple[Command, ...]:
    found: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: str(choice.help or "") for choice in action._choices_actions}
            for name, sub in action.choices.items():
                words = tuple(
                    str(choice)
                    for positional in sub._actions
                    if not positional.option_strings and positional.choices
                    for choice in positional.choices
                )
                found.append(Command(name, helps.get(name, ""), options_of(sub), words))
    return tuple(found)


def function_name(program: str) -> str:
    return "_" + re.sub(r"[^A-Za-z0-9]", "_", program)


def bash_script(program: str, parser: argparse.ArgumentParser) -> str:
    top, commands = options_of(parser), commands_of(parser)
    valued = sorted({flag for option in top if option.takes_value for flag in option.flags})
    cases: list[str] = []
    for name, options in [("", top), *((c.name, c.options) for c in commands)]:
        for option in options:
            if option.choices:
                patterns = "|".join(f"{name}:{flag}" for flag in option.flags)
                cases.append(f"        {patterns}) words={shlex.quote(' '.join(option.choices))};;")
            elif option.takes_value:
                patterns = "|".join(f"{name}:{flag}" for flag in option.flags)
                cases.append(f"        {patterns}) return;;")
    # Flags when the word starts with "-", else the commands or the argument's values.
    offers = [("", top, [c.name for c in commands])]
    offers += [(c.name, c.options, list(c.words)) for c in commands]
    listing = "\n".join(
        f"                {shlex.quote(name)}) flags={_words(f for o in options for f in o.flags)}"
        f" words={_words(plain)};;"
        for name, options, plain in offers
    )
    function = function_name(program)
    return f"""# {program} completion for bash: source <({program} completion bash)
{function}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local command="" flags="" words="" i=1
    # The command is the first word that is neither a flag nor a flag's value.
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case "${{COMP_WORDS[i]}}" in
            {"|".join(valued)}) i=$((i + 2)); continue;;
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break;;
        esac
        i=$((i + 1))
    done
    case "$command:$prev" in
{chr(10).join(cases)}
        *)
            case "$command" in
{listing}
            esac
            case "$cur" in -*) words="$flags";; esac;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F {function} {program}
"""


def _words(words: Iterable[str]) -> str:
    return shlex.quote(" ".join(words))


def zsh_script(program: str, parser: argparse.ArgumentParser) -> str:
    return (
        f"#compdef {program}\n"
        f"# {program} completion for zsh: source <({program} completion zsh)\n"
        "(( $+functions[compdef] )) || { autoload -Uz compinit && compinit; }\n"
        "autoload -Uz bashcompinit && bashcompinit\n" + bash_script(program, parser)
    )


def fish_script(program: str, parser: argparse.ArgumentParser) -> str:
    lines = [
        f"# {program} completion for fish: {program} completion fish | source",
        f"complete -c {program} -f",
    ]
    for option in options_of(parser):
        lines.append(_fish_option(program, "__fish_use_subcommand", option))
    for command in commands_of(parser):
        lines.append(
            f"complete -c {program} -n __fish_use_subcommand -a {shlex.quote(command.name)} "
            f"-d {shlex.quote(command.help)}"
        )
        seen = f"__fish_seen_subcommand_from {command.name}"
        lines += [_fish_option(program, seen, option) for option in command.options]
        if command.words:
            words = shlex.quote(" ".join(command.words))
            lines.append(f"complete -c {program} -n {shlex.quote(seen)} -a {words}")
    return "\n".join(lines) + "\n"


def _fish_option(program: str, condition: str, option: Option) -> str:
    parts = [f"complete -c {program} -n {shlex.quote(condition)}"]
    for flag in option.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.choices:
        parts.append(f"-x -a {shlex.quote(' '.join(option.choices))}")
    elif option.takes_value:
        parts.append("-r")
    if option.help:
        parts.append(f"-d {shlex.quote(option.help)}")
    return " ".join(parts)


SCRIPTS = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a completion script. bash: source <(google-token-operator completion bash); "
        "zsh: the same with zsh; fish: google-token-operator completion fish | source."
    )
    parser.add_argument("shell", choices=SHELLS, help="bash, zsh or fish")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`parser`: the installed command's (google-token-operator), whatever ran this."""
    sys.stdout.write(SCRIPTS[args.shell](parser.prog, parser))
    return 0
