"""The `tokenbudget` CLI: count, prune, and exit code 2 with the line named on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main

LINES = [
    {"id": "s", "role": "system", "content": "You are a coding agent."},
    {"id": "u1", "role": "user", "content": "Fix the flaky payments test. " * 30},
    {
        "id": "a1",
        "role": "assistant",
        "content": [
            {"type": "tool_call", "id": "c1", "name": "read_file", "arguments": {"path": "t.py"}}
        ],
    },
    {"id": "t1", "role": "tool", "tool_call_id": "c1", "content": "def test(): ..." * 40},
    {"id": "u2", "role": "user", "content": "The staging DB port is 6432.", "pinned": True},
    {"id": "u3", "role": "user", "content": "Now rerun the suite. " * 30},
]


@pytest.fixture
def conversation_file(tmp_path: Path) -> Path:
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return path


def test_prune_writes_kept_messages_to_stdout_and_the_report_to_stderr(
    conversation_file: Path, capsys
) -> None:
    code = main(
        [
            "prune",
            "--model",
            "gpt-4o",
            "--context-limit",
            "2000",
            "--history",
            "120",
            "--strategy",
            "sliding_window",
            "--task",
            "payments",
            str(conversation_file),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    kept = [json.loads(line) for line in out.splitlines()]
    ids = [m["id"] for m in kept]
    assert ids[0] == "s" and "u2" in ids and ids[-1] == "u3"
    assert "u1" not in ids
    assert all(isinstance(m["token_count"], int) for m in kept)
    assert "sliding_window" in err and "history" in err
    assert "u3 of" in err and "cut to" in err  # the newest turn alone exceeds 120 tokens


def test_count_prints_per_message_tokens(conversation_file: Path, capsys) -> None:
    assert main(["count", "--model", "gpt-4", str(conversation_file)]) == 0
    out = capsys.readouterr().out
    assert "tool_results" in out and "u2" in out and "level=ok" in out


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{not json", "conv.jsonl:2: invalid JSON"),
        ('{"id": "x", "role": "user"}', "conv.jsonl:2: missing field(s) content"),
        (
            '{"id": "x", "role": "wizard", "content": "hi"}',
            "conv.jsonl:2: message 'x': unknown role",
        ),
        ('{"id": "s", "role": "user", "content": "again"}', "duplicate message id 's'"),
    ],
)
def test_bad_input_exits_2_naming_the_line_and_writes_nothing(
    tmp_path: Path, capsys, line: str, error: str
) -> None:
    path = tmp_path / "conv.jsonl"
    path.write_text(json.dumps(LINES[0]) + "\n" + line + "\n")
    assert main(["prune", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert error in err


def test_unknown_policy_key_is_a_clear_error(conversation_file: Path, capsys) -> None:
    assert main(["prune", "--policy", "histroy=100", str(conversation_file)]) == 2
    assert "unknown policy keys: histroy" in capsys.readouterr().err


def test_console_script_runs_as_a_process(conversation_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams", "prune", "--history", "0.01", str(conversation_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") >= 2
