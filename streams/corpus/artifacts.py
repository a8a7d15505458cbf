"""Tool output: logs, search results, source files, test reports, tickets, wiki pages.

Each builder takes `extra` lines (planted facts, near misses) and buries them among generated
lines, away from the very top, the way a useful line hides in the middle of a long log.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from streams.corpus.texts import PROSE
from streams.corpus.vocabulary import NOUNS, VERBS, Scene, pool

EPOCH = datetime(2024, 5, 13, 8, 0, tzinfo=UTC)

LOG_EVENTS = pool(
    "GET /v1/{noun}s/{id} {status} {ms}ms|POST /v1/{noun}s {status} {ms}ms user=u{id}|"
    "retrying {vendor} call attempt={n} backoff={ms}ms|pool stats active={n} idle={n2} "
    "waiting={n3}|cache hit ratio {pct}% over the last {n} minutes|worker-{n} heartbeat ok "
    "lag={ms}ms|slow query {ms}ms: SELECT id, status FROM {noun}s WHERE updated_at > $1 LIMIT "
    "{big}|published {n} events to {service}.{noun}s|config reloaded from "
    "/etc/{service}/{env}.yaml|upstream {vendor} responded {status} in {ms}ms|gc pause {ms}ms "
    "heap={big}KB|circuit breaker for {vendor} is {state}|job {service}-nightly step {n}/{n2} "
    "done in {ms}ms|token refresh for {vendor} ok, expires in {big}s|dropped {n} {noun}s "
    "after validation errors|request_id={id} {verb} {noun} took {ms}ms"
)
LOG_SOURCES = pool("audit|deploy-bot|config|ops-journal|change-calendar|runbook-sync")
TITLES = pool(
    "How we cut {service} latency by {pct}%|{lib} release notes and migration guide|"
    "Postmortem: {symptom} in {service}|Runbook: operating {service} on {env}|"
    "{vendor} API reference: authentication and limits|Tuning connection pools for the "
    "{store}|Why our nightly jobs overran in {month}|Designing {feature} for large accounts|"
    "Feature flags at scale: lessons from {project}|On-call handbook for the {team} team|"
    "Backup and restore drills for {service}|Debugging the {symptom}: a field guide"
)
HOSTS = pool("wiki.internal|engineering.example.com|docs.example.org|blog.example.net")
STATES = pool("open|half-open|closed")
STATUSES = (200, 200, 200, 200, 201, 204, 404, 429, 500, 503)


def timestamp(seconds: float) -> str:
    """ISO timestamp `seconds` after the corpus epoch (deterministic, no clock read)."""
    return (EPOCH + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def clock_time(seconds: float) -> str:
    """Time of day `seconds` after the corpus epoch, as log lines print it."""
    return (EPOCH + timedelta(seconds=seconds)).strftime("%H:%M:%S.%f")[:-3]


def bury(rng: random.Random, lines: list[str], extra: Sequence[str], lo: float = 0.25) -> None:
    """Insert `extra` lines at random places between `lo` and 90% of `lines`, in order."""
    for item in extra:
        at = rng.randint(int(len(lines) * lo), max(int(len(lines) * 0.9), int(len(lines) * lo)))
        lines.insert(at, item)


def _event(rng: random.Random, scene: Scene, template: str) -> str:
    return scene.fill(
        rng,
        template,
        id=f"{rng.getrandbits(32):08x}",
        status=rng.choice(STATUSES),
        state=rng.choice(STATES),
    )


def log_output(
    rng: random.Random, scene: Scene, lines: int, extra: Sequence[str], start: float
) -> str:
    """Service log lines; `extra` become lines from an audit or config source."""
    service = rng.choice(scene.services)
    at = start
    out: list[str] = []
    for _ in range(lines):
        at += rng.uniform(0.05, 9.0)
        level = rng.choices(("INFO ", "DEBUG", "WARN ", "ERROR"), (70, 15, 10, 5))[0]
        out.append(
            f"{clock_time(at)} {level} [{service}] {_event(rng, scene, rng.choice(LOG_EVENTS))}"
        )
    notes = [f"{clock_time(at)} INFO  [{rng.choice(LOG_SOURCES)}] {item}" for item in extra]
    bury(rng, out, notes)
    return "\n".join(out)


def search_results(rng: random.Random, scene: Scene, query: str, count: int, extra: str) -> str:
    """A numbered page of web or wiki search results; `extra` sits in one snippet."""
    results = []
    for _ in range(count):
        title = scene.fill(rng, rng.choice(TITLES))
        slug = "-".join(title.lower().split()[:5]).strip(":,%")
        snippet = " ".join(scene.fill(rng, t) for t in rng.sample(PROSE, rng.randint(1, 3)))
        results.append((title, f"https://{rng.choice(HOSTS)}/{slug}", snippet))
    if extra:
        at = rng.randint(min(2, count - 1), count - 1)
        title, url, snippet = results[at]
        results[at] = (title, url, f"{snippet} {extra}")
    body = [f"{i}. {t}\n   {u}\n   {s}" for i, (t, u, s) in enumerate(results, start=1)]
    header = f'Results for "{query}" ({count} of about {rng.randint(200, 90000)}):'
    return "\n".join([header, *body])


def source_file(rng: random.Random, scene: Scene, path: str, extra: Sequence[str]) -> str:
    """A Python module of a few functions; `extra` become comments inside the code."""
    service = path.split("/")[1] if path.count("/") >= 2 else rng.choice(scene.services)
    lines = [
        f'"""{service.capitalize()} {rng.choice(NOUNS)} handling for the {scene.team} team."""',
        "",
        "from __future__ import annotations",
        "",
        "import logging",
        f"from {service}.settings import settings",
        "",
        "log = logging.getLogger(__name__)",
        "",
    ]
    for _ in range(rng.randint(4, 8)):
        lines += _function(rng, scene, service)
    bury(rng, lines, [f"    # NOTE: {item}" for item in extra], lo=0.3)
    return "\n".join(lines)


def _function(rng: random.Random, scene: Scene, service: str) -> list[str]:
    verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
    kind = noun.capitalize()
    body = rng.choice(
        [
            [
                f"    for attempt in range(settings.{service}_retries):",
                f"        result = client.{verb}({noun}, attempt=attempt)",
                "        if result.ok:",
                "            return result",
                f'        log.warning("{verb} failed", extra={{"attempt": attempt}})',
                f"    return {kind}.empty()",
            ],
            [
                f"    if not {noun}.id:",
                f'        raise ValueError("{noun} without id")',
                f"    cached = cache.get({noun}.id)",
                "    if cached is not None:",
                "        return cached",
                f"    return cache.setdefault({noun}.id, client.{verb}({noun}))",
            ],
            [
                f"    rows = [r for r in {noun}.rows if r.status != 'deleted']",
                f"    log.info('{verb} %d rows for {service}', len(rows))",
                f"    return {kind}(rows=rows, source='{rng.choice(scene.envs)}')",
            ],
        ]
    )
    doc = f'    """{verb.capitalize()} one {noun} for {service} ({rng.choice(scene.vendors)})."""'
    return [f"def {verb}_{noun}(client, cache, {noun}: {kind}) -> {kind}:", doc, *body, "", ""]


def test_report(rng: random.Random, scene: Scene, extra: Sequence[str]) -> str:
    """A pytest run with one failure; `extra` appear in the failure's captured log."""
    service = rng.choice(scene.services)
    total = rng.randint(40, 160)
    lines = ["=" * 30 + " test session starts " + "=" * 30, f"collected {total} items", ""]
    for leaf in rng.sample(("client", "handlers", "models", "settings", "retry", "tasks"), 4):
        dots = "".join(rng.choice("....F.s") for _ in range(rng.randint(8, 30)))
        lines.append(f"tests/{service}/test_{leaf}.py {dots}")
    name = f"test_{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
    lines += [
        "",
        "=" * 30 + " FAILURES " + "=" * 30,
        f"_____ {name} _____",
        f">       assert result.status == '{rng.choice(('done', 'ok', 'synced'))}'",
        "E       AssertionError: assert 'pending' == 'done'",
        "-" * 20 + " Captured log call " + "-" * 20,
    ]
    captured = [
        f"INFO     {service}.client:client.py:{rng.randint(20, 400)} "
        f"{_event(rng, scene, rng.choice(LOG_EVENTS))}"
        for _ in range(rng.randint(6, 14))
    ]
    bury(rng, captured, [f"INFO     {service}.notes:notes.py:1 {item}" for item in extra])
    lines += captured
    passed = total - 1
    lines.append(f"FAILED tests/{service}/test_client.py::{name} - AssertionError")
    lines.append(f"==== 1 failed, {passed} passed in {rng.uniform(3, 90):.2f}s ====")
    return "\n".join(lines)


def ticket_list(rng: random.Random, scene: Scene, extra: Sequence[str]) -> str:
    """Open tickets of the team; `extra` become a ticket comment."""
    lines = []
    for _ in range(rng.randint(4, 9)):
        key = f"{rng.choice(('OPS', 'PLAT', 'CORE', 'SRE'))}-{rng.randint(1000, 9999)}"
        what = scene.fill(rng, rng.choice(("{symptom} in {service}", "{feature} follow-ups")))
        lines.append(
            f"{key}  {rng.choice(('open', 'in progress', 'blocked'))}  "
            f"P{rng.randint(1, 4)}  {what}  (assignee: {rng.choice(scene.people)})"
        )
    bury(rng, lines, [f"    comment by {rng.choice(scene.people)}: {item}" for item in extra])
    return "\n".join(lines)


def grep_output(rng: random.Random, scene: Scene, pattern: str, extra: Sequence[str]) -> str:
    """Matches of `pattern` across the repository; `extra` become matching comment lines."""
    lines = [
        f"{scene.path(rng)}:{rng.randint(3, 400)}:    {line}"
        for line in (
            f"result = {pattern}({rng.choice(NOUNS)}, timeout=settings.timeout)",
            f"# TODO({rng.choice(scene.people).lower()}): stop calling {pattern} twice",
            f"from {rng.choice(scene.services)}.client import {pattern}",
            f"assert {pattern} is not None",
            f"log.debug('{pattern} took %sms', elapsed)",
        )
        if rng.random() < 0.8
    ]
    bury(rng, lines, [f"{scene.path(rng)}:{rng.randint(3, 400)}:    # {x}" for x in extra], 0.0)
    return "\n".join(lines or [f"{scene.path(rng)}:1:import {pattern}"])


def doc_page(
    rng: random.Random, scene: Scene, title: str, paragraphs: int, extra: Sequence[str]
) -> str:
    """A wiki page of prose paragraphs; `extra` sentences join paragraphs past the first."""
    paras = [
        " ".join(scene.fill(rng, t) for t in rng.sample(PROSE, rng.randint(2, 5)))
        for _ in range(paragraphs)
    ]
    for item in extra:
        at = rng.randint(min(1, paragraphs - 1), paragraphs - 1)
        paras[at] = f"{paras[at]} {item}"
    headings = ("Overview", "Configuration", "Operations", "Known issues", "Contacts", "History")
    body = [f"## {rng.choice(headings)}\n{p}" for p in paras]
    return "\n\n".join([f"# {title}", *body])


def git_log(rng: random.Random, scene: Scene, count: int, start: float) -> str:
    """`git log` output of recent commits."""
    subjects = pool(
        "Fix {symptom} in {service}|Bump {lib}|Refactor the {service} client|Add {feature} "
        "behind a flag|Tune {store} pool size on {env}|Revert retry change in {service}"
    )
    out = []
    for i in range(count):
        when = timestamp(start - i * rng.uniform(600, 86400))
        author = rng.choice(scene.people)
        out.append(
            f"commit {rng.getrandbits(160):040x}\nAuthor: {author} <{author.lower()}@example.com>"
            f"\nDate:   {when}\n\n    {scene.fill(rng, rng.choice(subjects))}\n"
        )
    return "\n".join(out)


def status_poll(rng: random.Random, target: str, attempt: int, at: float, *, ci: bool) -> str:
    """One poll of a stuck job: odd polls get the status endpoint's cached answer (an exact
    repeat), the others differ from it in small details (a near duplicate)."""
    ready, checked = (2, 0.0) if attempt % 2 == 1 else (rng.choice((1, 2, 3)), at)
    if ci:
        return (
            f"{target}: status=queued, position {ready} in queue, runners busy 6/6, "
            f"checked {timestamp(checked)}"
        )
    return (
        f"{target}: status=progressing, ready {ready}/6, last event: readiness probe failed "
        f"(HTTP 503) on {target.split()[0]}-7f9c4, checked {timestamp(checked)}"
    )
