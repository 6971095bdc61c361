"""`adacompress` console script: one subcommand per job, each a module under `adacompress.commands`.

A command module exposes `configure(parser)` and `run(args) -> int`; its one-line help and the examples
that end its `--help` live here (after any notes its `configure` put in the parser's epilog). Commands
whose module is not in this release answer with the release that brings them (exit code 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from adacompress import __version__
from adacompress.errors import AdaCompressError

COMMANDS: dict[str, str] = {
    "demo": "send the bundled photos through the proxy with a stock boto3 client (no account, no Redis)",
    "train": "train a DQN agent on a backend",
    "eval": "evaluate policies on a backend",
    "bench": "rate-accuracy sweep: fixed qualities, other codecs, oracle and agents",
    "serve": "run the upload proxy and the inference-estimate-retrain daemon",
    "replay": "stream a drift scenario through the daemon",
    "compress": "compress images with a policy",
    "fake-cloud": "run a fake cloud vision API server on loopback",
    "learn": "retrain the current policy on the service's transitions; publish candidates that validate",
}
EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": (
        "adacompress demo",
        "adacompress demo --images photos/ --backend local:lite0",
    ),
    "train": (
        "adacompress train --backend local --images photos/ --subset even --heldout odd --steps 3000 --views 2 "
        "--alpha 2.5 --out my-agent.zip",
        "adacompress train --backend local --images photos/ --subset even --steps 3000 --out my-agent.zip --resume",
    ),
    "eval": (
        "adacompress eval",
        "adacompress eval --backend local --images photos/ --subset odd --policy pretrained:local-lite2 "
        "--policy fixed:15 --json eval.json",
    ),
    "bench": (
        "adacompress bench --backend local --images photos/ --subset odd --out bench-out/",
        "adacompress bench --backend local --images photos/ --rule top1 --agent my-agent.zip --out bench-out/",
    ),
    "serve": (
        "adacompress serve --backend local",
        "adacompress serve --backend rekognition --redis redis://127.0.0.1:6379/0 --target-accuracy 0.98",
    ),
    "replay": (
        "adacompress replay day-to-night --backend local --images photos/ --out replay-out/",
        "adacompress replay my-scenario.toml --images photos/ --rules both --out replay-out/",
        "adacompress replay fog-rolls-in --images photos/ --proxy http://127.0.0.1:8080 --out replay-out/",
    ),
    "compress": (
        "adacompress compress photos/ --policy pretrained:local-lite2 --out small/",
        "adacompress compress photo.jpg --policy fixed:25 --out small/",
    ),
    "fake-cloud": (
        "adacompress fake-cloud --provider rekognition --port 8765",
        "adacompress fake-cloud --provider baidu --port 8500 --qps-limit 2 --daily-limit 1000",
    ),
    "learn": (
        "adacompress learn --redis redis://127.0.0.1:6379/0 --min-transitions 500 --gradient-steps 200",
        "adacompress learn --redis redis://127.0.0.1:6379/0 --once",
    ),
}
"""Command lines that end each command's `--help`, so every help page shows one ready to adapt."""
PLANNED_RELEASE = {
    "train": "0.2 (the agent)", "eval": "0.2 (the agent)", "bench": "0.2 (the agent)",
    "compress": "0.2 (the agent)", "fake-cloud": "0.3 (cloud backends)",
}


def _command_module(name: str):
    try:
        return importlib.import_module(f"adacompress.commands.{name.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name == f"adacompress.commands.{name.replace('-', '_')}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adacompress",
        description="Learn, per image, the lowest compression that keeps a cloud vision API's answer.",
    )
    parser.add_argument("--version", action="version", version=f"adacompress {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is None:
            sub.add_parser(name, help=f"{help_text} [arrives in release {PLANNED_RELEASE[name]}]",
                           add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
        else:
            command = sub.add_parser(name, help=help_text, description=help_text,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
            module.configure(command)
            command.epilog = with_examples(command.epilog, EXAMPLES[name])
    return parser


def with_examples(notes: str | None, examples: tuple[str, ...]) -> str:
    """A command's epilog: its notes (if any), then its examples, one per line."""
    block = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    return f"{notes.rstrip()}\n\n{block}" if notes else block


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run one command; errors become one clear line and a non-zero exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    module = _command_module(args.command)
    if module is None:
        print(f"adacompress {args.command}: not in release {__version__}; it arrives in release "
              f"{PLANNED_RELEASE[args.command]}.", file=sys.stderr)
        return 2
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(module.run(args) or 0)
    except AdaCompressError as exc:
        print(f"adacompress {args.command}: error [{exc.code}]: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        print(f"adacompress {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"adacompress {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
