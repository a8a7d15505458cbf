"""`tokenbudget`: the command line. Each subcommand is a thin shell over the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from streams.budget import STRATEGIES, BudgetManager, Message, Policy, message_from_json
from streams.budget.convert import message_to_json
from streams.errors import InvalidMessageError, TokenBudgetError
from streams.report import actions_table, snapshot_table

if TYPE_CHECKING:
    from streams.settings import Settings

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input the user must fix; the message names the file and line."""


def read_jsonl(path: str) -> list[Message]:
    """Parse a JSONL file of messages completely, or raise `BadInput` naming the line."""
    stream: TextIO
    try:
        stream = sys.stdin if path == "-" else Path(path).open(encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise BadInput(f"{path}: {error.strerror}") from error
    messages: list[Message] = []
    seen: set[str] = set()
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                message = message_from_json(json.loads(line), where)
            except json.JSONDecodeError as error:
                raise BadInput(f"{where}: invalid JSON ({error.msg})") from error
            except InvalidMessageError as error:
                raise BadInput(str(error)) from error
            except (KeyError, TypeError, AttributeError) as error:
                raise BadInput(f"{where}: malformed message ({error!r})") from error
            if message.id in seen:
                raise BadInput(f"{where}: duplicate message id {message.id!r}")
            seen.add(message.id)
            messages.append(message)
    return messages


def parse_share(text: str) -> int | float:
    """`2048` → 2048 tokens, `0.35` or `35%` → a fraction."""
    text = text.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text) if "." in text else int(text)


def policy_from_args(args: argparse.Namespace) -> Policy:
    """The policy from `--history` and repeated `--policy key=value` options."""
    overrides: dict[str, Any] = {}
    for item in args.policy or []:
        key, _, value = item.partition("=")
        if not value:
            raise BadInput(f"--policy {item!r}: expected key=value")
        overrides[key.strip()] = parse_share(value)
    if args.history is not None:
        overrides["history"] = parse_share(args.history)
    return Policy.from_mapping(overrides)


def _manager(args: argparse.Namespace) -> BudgetManager:
    return BudgetManager(
        args.model,
        args.context_limit,
        policy_from_args(args),
        tokenizer_path=args.tokenizer,
    )


def cmd_count(args: argparse.Namespace) -> int:
    """Count a JSONL conversation (or plain text with --text) and print the budget."""
    if args.text:
        manager = BudgetManager(args.model, args.context_limit, tokenizer_path=args.tokenizer)
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        flag = " (estimated)" if manager.estimated else ""
        print(f"{manager.counter.count_text(text)} tokens{flag}")
        return 0
    messages = read_jsonl(args.file)
    manager = _manager(args)
    for message in messages:
        print(f"{manager.count(message):>8}  {message.component.value:<13} {message.id}")
    print(snapshot_table(manager.snapshot(messages), f"\n{args.model}"))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Prune a JSONL conversation: kept messages to stdout, the report to stderr."""
    messages = read_jsonl(args.file)
    manager = _manager(args)
    prepared = manager.prepare(messages, task=args.task, strategy=args.strategy)
    out = "".join(
        json.dumps(message_to_json(m), ensure_ascii=False) + "\n" for m in prepared.messages
    )
    sys.stdout.write(out)
    sys.stdout.flush()
    print(snapshot_table(prepared.before, f"before ({len(messages)} messages)"), file=sys.stderr)
    print(
        snapshot_table(prepared.snapshot, f"after ({len(prepared.messages)} messages)"),
        file=sys.stderr,
    )
    print("actions:\n" + actions_table(prepared.actions), file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the streaming demo, or the in-process one with --in-process."""
    if args.in_process:
        from streams.demo import run_demo

        return run_demo(args)
    from streams.demo_stream import run_stream_demo

    return run_stream_demo(args.sessions, args.turns, args.seed)


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded Kafka-protocol broker until Ctrl-C."""
    from streams.broker import EmbeddedBroker

    return EmbeddedBroker(args.port).run_forever()


def settings_from_flags(flags: dict[str, Any]) -> Settings:
    """Settings from the environment, overridden by the flags that were given (not None)."""
    from streams.settings import Settings

    return Settings(**{k: v for k, v in flags.items() if v is not None})


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the budget worker (settings from TOKENBUDGET_* variables, overridden by flags)."""
    from streams.worker import run_worker

    flags = {
        "bootstrap": args.bootstrap,
        "partitions": args.partitions,
        "data_dir": args.data_dir,
        "web_port": args.web_port,
        "topic_prefix": args.topic_prefix,
        "app_id": args.app_id,
        "store": args.store,
        "embedded_broker": True if args.embedded_broker else None,
        "scoring": False if args.no_scoring else None,
        "metrics_port": args.metrics_port,
        **_security_flags(args),
    }
    return run_worker(settings_from_flags(flags), args.loglevel)


def cmd_summarizer(args: argparse.Namespace) -> int:
    """Run the summarizer consumer (settings from TOKENBUDGET_* variables, overridden by flags)."""
    from streams.summarizer.service import run_summarizer

    flags = {
        "bootstrap": args.bootstrap,
        "partitions": args.partitions,
        "topic_prefix": args.topic_prefix,
        "summarizer_backend": args.backend,
        "summarizer_group": args.group,
        "summarizer_metrics_port": args.metrics_port,
        **_security_flags(args),
    }
    return run_summarizer(settings_from_flags(flags), args.loglevel)


def cmd_top(args: argparse.Namespace) -> int:
    """Show the fleet's budgets live, from budget.events and budget.commands, until q."""
    from streams.security import client_options
    from streams.top import run_top

    flags = {"bootstrap": args.bootstrap, "topic_prefix": args.topic_prefix}
    settings = settings_from_flags(flags | _security_flags(args))
    return run_top(
        settings.bootstrap,
        settings.topic_prefix,
        from_beginning=args.from_beginning,
        options=client_options(settings),
    )


class _RefusedSecret(argparse.Action):
    """A secret given as a flag value: any user of the machine can read it in `ps`."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} is not accepted (a command line is visible to every user): use "
            "--sasl-password-file or TOKENBUDGET_SASL_PASSWORD(_FILE)"
        )


def _security_options(parser: argparse.ArgumentParser) -> None:
    """Kafka TLS/SASL flags. A secret is only ever given as a file, never on the command line."""
    from streams.security import MECHANISMS, PROTOCOLS

    group = parser.add_argument_group("Kafka security (each overrides its TOKENBUDGET_* variable)")
    group.add_argument(
        "--security-protocol",
        type=str.upper,
        choices=PROTOCOLS,
        help="PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    group.add_argument("--sasl-mechanism", type=str.upper, choices=MECHANISMS)
    group.add_argument("--sasl-username", help="SASL user (TOKENBUDGET_SASL_USERNAME)")
    group.add_argument(
        "--sasl-password-file",
        help="file holding the SASL password (TOKENBUDGET_SASL_PASSWORD_FILE)",
    )
    # Named, so that argparse does not take it for an abbreviation of --sasl-password-file.
    group.add_argument("--sasl-password", action=_RefusedSecret, help=argparse.SUPPRESS)
    group.add_argument("--ssl-cafile", help="CA certificates, PEM (TOKENBUDGET_SSL_CAFILE)")
    group.add_argument("--ssl-certfile", help="client certificate, PEM (TOKENBUDGET_SSL_CERTFILE)")
    group.add_argument("--ssl-keyfile", help="client key, PEM (TOKENBUDGET_SSL_KEYFILE)")


def _security_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The security flags as Settings fields (None: not given, the environment decides)."""
    sasl = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password_file")
    tls = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    return {name: getattr(args, name) for name in (*sasl, *tls)}


def _budget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="gpt-4o", help="model name (default gpt-4o)")
    parser.add_argument(
        "--context-limit",
        type=int,
        default=128_000,
        help="context window in tokens (default 128000)",
    )
    parser.add_argument("--history", help="history share: tokens (2048) or fraction (0.35)")
    parser.add_argument(
        "--policy",
        action="append",
        metavar="KEY=VALUE",
        help="any policy share or threshold, e.g. tool_results=4096 (repeatable)",
    )
    parser.add_argument("--tokenizer", help="local Hugging Face tokenizer.json for other models")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tokenbudget",
        description="Token budget management for fleets of long-running LLM agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    count = sub.add_parser("count", help="count tokens of a JSONL conversation or plain text")
    _budget_options(count)
    count.add_argument("--text", action="store_true", help="FILE is plain text, not JSONL")
    count.add_argument("file", metavar="FILE", help="JSONL file, one message per line; - = stdin")
    count.set_defaults(func=cmd_count)

    prune = sub.add_parser("prune", help="prune a JSONL conversation to its budget")
    _budget_options(prune)
    prune.add_argument("--strategy", choices=STRATEGIES, default="cascade")
    prune.add_argument("--task", default="", help="what the agent is doing now")
    prune.add_argument("file", metavar="FILE", help="JSONL file, one message per line; - = stdin")
    prune.set_defaults(func=cmd_prune)

    broker = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu)")
    broker.add_argument("--port", type=int, help="loopback port (default: a free one)")
    broker.set_defaults(func=cmd_broker)

    worker = sub.add_parser("worker", help="run the budget worker (Faust)")
    worker.add_argument("--bootstrap", help="Kafka bootstrap servers (TOKENBUDGET_BOOTSTRAP)")
    worker.add_argument("--partitions", type=int, help="topic partitions (default 8)")
    worker.add_argument("--data-dir", help="Faust data directory (TOKENBUDGET_DATA_DIR)")
    worker.add_argument("--web-port", type=int, help="HTTP port (TOKENBUDGET_WEB_PORT)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus /metrics port, 0 = off (TOKENBUDGET_METRICS_PORT, default 9464)",
    )
    worker.add_argument("--topic-prefix", help="prefix of every topic (TOKENBUDGET_TOPIC_PREFIX)")
    worker.add_argument("--app-id", help="Faust app id / consumer group (TOKENBUDGET_APP_ID)")
    worker.add_argument(
        "--embedded-broker",
        action="store_true",
        help="the broker is the embedded Tansu (TOKENBUDGET_EMBEDDED_BROKER)",
    )
    worker.add_argument("--store", help="memory:// (default) or rocksdb:// (TOKENBUDGET_STORE)")
    worker.add_argument(
        "--no-scoring",
        action="store_true",
        help="rank by term overlap instead of embeddings (TOKENBUDGET_SCORING=0)",
    )
    worker.add_argument(
        "--loglevel", default="info", choices=("crit", "error", "warn", "info", "debug")
    )
    _security_options(worker)
    worker.set_defaults(func=cmd_worker)

    summarizer = sub.add_parser(
        "summarizer", help="run the summarizer: SUMMARIZE commands in, summaries out"
    )
    summarizer.add_argument("--bootstrap", help="Kafka bootstrap servers (TOKENBUDGET_BOOTSTRAP)")
    summarizer.add_argument(
        "--backend",
        choices=("extractive", "openai"),
        help="extractive (offline, default) or openai (TOKENBUDGET_SUMMARIZER_BACKEND)",
    )
    summarizer.add_argument(
        "--partitions", type=int, help="partitions of topics it creates (default 8)"
    )
    summarizer.add_argument(
        "--topic-prefix", help="prefix of every topic (TOKENBUDGET_TOPIC_PREFIX)"
    )
    summarizer.add_argument("--group", help="consumer group (TOKENBUDGET_SUMMARIZER_GROUP)")
    summarizer.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus /metrics port, 0 = off (TOKENBUDGET_SUMMARIZER_METRICS_PORT, "
        "default 9465)",
    )
    summarizer.add_argument(
        "--loglevel", default="info", choices=("crit", "error", "warn", "info", "debug")
    )
    _security_options(summarizer)
    summarizer.set_defaults(func=cmd_summarizer)

    top = sub.add_parser("top", help="live view of session budgets and commands (q quits)")
    top.add_argument("--bootstrap", help="Kafka bootstrap servers (TOKENBUDGET_BOOTSTRAP)")
    top.add_argument("--topic-prefix", help="prefix of every topic (TOKENBUDGET_TOPIC_PREFIX)")
    top.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the topics from their start (default: only what arrives from now on)",
    )
    _security_options(top)
    top.set_defaults(func=cmd_top)

    demo = sub.add_parser("demo", help="run the demo on a generated long agent conversation")
    demo.add_argument(
        "--in-process", action="store_true", help="one long session through the library, no broker"
    )
    demo.add_argument("--sessions", type=int, default=20, help="agent sessions (default 20)")
    demo.add_argument("--turns", type=int, default=60, help="turns per session (default 60)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--context-limit", type=int, default=16_000)
    demo.add_argument("--model", default="gpt-4o")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tokenbudget` and `python -m streams`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BadInput as error:
        print(f"tokenbudget: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TokenBudgetError as error:
        print(f"tokenbudget: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
