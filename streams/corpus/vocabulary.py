"""Word pools and the `Scene`: the cast of one conversation (services, people, libraries …).

Every conversation draws a small cast from large pools, and all of its messages (facts, near
misses, filler) talk about that cast. Topics therefore recur across many messages, as they do in a
real session, and the one message that holds a fact is not the only one that names its subject.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def pool(text: str) -> tuple[str, ...]:
    """The items of a `|`-separated list (one string keeps long pools compact)."""
    return tuple(item.strip() for item in text.split("|") if item.strip())


def pick_other(rng: random.Random, items: Sequence[T], *exclude: T) -> T:
    """A random item of `items` that is none of `exclude`."""
    return rng.choice([item for item in items if item not in exclude])


SERVICES = pool(
    "payments|billing|search|auth|notifications|ingest|reporting|inventory|checkout|shipping|"
    "recommendations|analytics|gateway|scheduler|media|accounts|pricing|catalog"
)
ENVS = pool("staging|production|canary|qa|sandbox|preprod")
STORES = pool("database|cache|message broker|search cluster|metrics store|job queue")
PEOPLE = pool(
    "Ana|Bruno|Chen|Dmitri|Elif|Farah|Gustavo|Hana|Ivan|Jonas|Kemi|Lars|Mei|Nadia|Omar|Priya|"
    "Quinn|Rafael|Sofia|Tariq|Uma|Viktor|Wen|Yusuf|Zara|Marta|Kofi|Ingrid"
)
WEEKDAYS = pool("Monday|Tuesday|Wednesday|Thursday|Friday")
MONTHS = pool("March|April|May|June|July|August|September|October|November")
LIBRARIES = pool(
    "sqlalchemy|pydantic|fastapi|celery|redis-py|httpx|boto3|numpy|pandas|protobuf|grpcio|"
    "django|flask|alembic|psycopg|uvicorn|requests|pyyaml|cryptography|structlog|tenacity"
)
VENDORS = pool(
    "Stripe|Twilio|SendGrid|Datadog|PagerDuty|Algolia|Mapbox|Segment|Auth0|Cloudflare|Sentry|"
    "Mailgun|Plaid|Okta|Zendesk|Intercom"
)
REGIONS = pool("eu-west-1|us-east-1|us-west-2|ap-southeast-1|eu-central-1|ca-central-1")
PROJECTS = pool(
    "Falcon|Juniper|Orca|Tundra|Marble|Quartz|Heron|Atlas|Ember|Cobalt|Lantern|Saffron|Drift"
)
SYMPTOMS = pool(
    "timeout spike|duplicate charge|memory leak|stale cache entries|slow checkout page|"
    "dropped webhook|login loop|missing invoice PDFs|CSV export crash|clock skew warning|"
    "retry storm|connection pool exhaustion|slow cold start|out-of-order events"
)
FEATURES = pool(
    "bulk export|invoice reminders|smart retries|saved searches|usage alerts|SSO login|"
    "partial refunds|audit trail|scheduled reports|webhook replay|team billing|price previews"
)
TEAMS = pool("platform|payments|growth|data|reliability|core|integrations")
VERBS = pool("load|parse|retry|flush|validate|render|sync|resolve|fetch|publish|merge|compact")
NOUNS = pool("batch|config|session|event|invoice|token|record|request|cursor|snapshot|report")


@dataclass(frozen=True, slots=True)
class Scene:
    """The cast of one conversation; `fill` picks from it to complete a template."""

    services: tuple[str, ...]
    envs: tuple[str, ...]
    people: tuple[str, ...]
    libraries: tuple[str, ...]
    vendors: tuple[str, ...]
    regions: tuple[str, ...]
    projects: tuple[str, ...]
    symptoms: tuple[str, ...]
    features: tuple[str, ...]
    team: str
    repo: str

    @classmethod
    def draw(cls, rng: random.Random) -> Scene:
        """A fresh cast drawn from the pools."""
        team = rng.choice(TEAMS)
        return cls(
            services=tuple(rng.sample(SERVICES, 4)),
            envs=tuple(rng.sample(ENVS, 3)),
            people=tuple(rng.sample(PEOPLE, 7)),
            libraries=tuple(rng.sample(LIBRARIES, 5)),
            vendors=tuple(rng.sample(VENDORS, 4)),
            regions=tuple(rng.sample(REGIONS, 3)),
            projects=tuple(rng.sample(PROJECTS, 2)),
            symptoms=tuple(rng.sample(SYMPTOMS, 4)),
            features=tuple(rng.sample(FEATURES, 3)),
            team=team,
            repo=f"{team}-{rng.choice(('core', 'services', 'platform', 'api'))}",
        )

    def path(self, rng: random.Random) -> str:
        """A plausible source path in the scene's repository."""
        service = rng.choice(self.services)
        leaf = rng.choice(("client", "handlers", "models", "settings", "retry", "tasks", "api"))
        if rng.random() < 0.3:
            return f"tests/{service}/test_{leaf}.py"
        return f"src/{service}/{leaf}.py"

    def fill(self, rng: random.Random, template: str, **fixed: object) -> str:
        """Complete `template`: each `{slot}` is drawn from the cast unless given in `fixed`."""
        values: dict[str, object] = dict(fixed)
        for _, name, _, _ in string.Formatter().parse(template):
            if name and name not in values:
                values[name] = self.slot(rng, name)
        return template.format(**values)

    def slot(self, rng: random.Random, name: str) -> object:
        """One random value for a template slot (`service`, `person2`, `ms`, …)."""
        base = name.rstrip("0123456789")
        pools: dict[str, tuple[str, ...]] = {
            "service": self.services,
            "env": self.envs,
            "person": self.people,
            "lib": self.libraries,
            "vendor": self.vendors,
            "region": self.regions,
            "project": self.projects,
            "symptom": self.symptoms,
            "feature": self.features,
            "store": STORES,
            "day": WEEKDAYS,
            "month": MONTHS,
            "verb": VERBS,
            "noun": NOUNS,
        }
        if base in pools:
            return rng.choice(pools[base])
        numbers = {"ms": (20, 900), "pct": (1, 99), "n": (2, 60), "big": (1000, 90000)}
        if base in numbers:
            return rng.randint(*numbers[base])
        if base == "path":
            return self.path(rng)
        if base == "team":
            return self.team
        if base == "repo":
            return self.repo
        if base == "sha":
            return f"{rng.getrandbits(28):07x}"
        raise KeyError(f"unknown template slot {name!r}")
