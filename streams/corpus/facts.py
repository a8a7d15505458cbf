"""Fact kinds: one small builder each, over the conversation's cast.

A builder returns the fact in a few phrasings (a sentence for chat, a terse note for logs and
code comments), the question that asks for it in other words, and near misses: the same subject
with another attribute, or the same attribute of another subject. Values in near misses always
differ from the answer, so a kept near miss never answers the question. Configuration facts live
here, facts about people and incidents in `streams.corpus.incidents`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from streams.corpus import incidents
from streams.corpus.conversation import Fact
from streams.corpus.vocabulary import STORES, Scene, pick_other

Builder = Callable[[random.Random, Scene], Fact]


def port(rng: random.Random, s: Scene) -> Fact:
    """A non-default port of one environment's store."""
    env, env2 = rng.sample(s.envs, 2)
    store = rng.choice(STORES)
    subject = f"{env} {store}"
    p, p2, p3 = rng.sample(range(3000, 9999), 3)
    return Fact.pick(
        rng,
        f"port:{subject}",
        [
            f"The {subject} listens on port {p}.",
            f"Heads-up: the {subject} port is {p}, not the default one.",
            f"Connections to the {subject} have to go through port {p}.",
        ],
        f"{subject} bound to port {p}",
        [
            f"Which port does the {subject} listen on?",
            f"What port should a client use to reach the {subject}?",
        ],
        str(p),
        [
            f"The {env2} {store} listens on port {p2}.",
            f"The {subject} allows {rng.randint(20, 400)} concurrent connections.",
            f"The {env} {pick_other(rng, STORES, store)} port is {p3}.",
        ],
    )


def version(rng: random.Random, s: Scene) -> Fact:
    """The pinned version of one library."""
    lib, lib2 = rng.sample(s.libraries, 2)
    v, v2, v3 = (f"{rng.randint(1, 5)}.{rng.randint(0, 30)}.{n}" for n in rng.sample(range(12), 3))
    reason = rng.choice(
        [
            f"the newer release breaks the {s.services[1]} retry hooks",
            "the next minor drops Python 3.10",
            f"the {s.services[2]} tests hang on anything newer",
        ]
    )
    return Fact.pick(
        rng,
        f"version:{lib}",
        [
            f"We pinned {lib} to {v} because {reason}.",
            f"{lib} stays at {v} in the lockfile: {reason}.",
            f"Lockfile check: {lib}=={v} ({reason}).",
        ],
        f"{lib}=={v} pinned ({reason})",
        [
            f"Which {lib} version are we pinned to?",
            f"What version of {lib} does the lockfile hold?",
        ],
        v,
        [
            f"{lib} {v2} came out last week with a long list of deprecations.",
            f"{lib2} is pinned to {v3}.",
            f"Upgrading {lib} would touch the {rng.choice(s.services)} client.",
        ],
    )


def secret_name(rng: random.Random, s: Scene) -> Fact:
    """The environment variable an integration reads its API key from."""
    vendor, vendor2 = rng.sample(s.vendors, 2)
    suffix = rng.choice(["API_KEY", "SECRET_KEY", "ACCESS_TOKEN", "TOKEN"])
    var = f"{s.team.upper()}_{vendor.upper()}_{suffix}"
    var2 = f"{vendor2.upper()}_{pick_other(rng, ['API_KEY', 'KEY', 'SECRET'], suffix)}"
    return Fact.pick(
        rng,
        f"secret:{vendor}",
        [
            f"The {vendor} client reads its API key from the {var} environment variable.",
            f"Set {var} before running anything that talks to {vendor}.",
            f"Credentials for {vendor} come from {var} in the deploy environment.",
        ],
        f"{vendor} credentials read from env {var}",
        [
            f"Which environment variable holds the {vendor} API key?",
            f"Where does the {vendor} integration get its credentials from?",
        ],
        var,
        [
            f"The {vendor2} client expects {var2}.",
            f"The {vendor} webhook signing secret is rotated every {rng.randint(30, 90)} days.",
            f"{vendor} keys for {rng.choice(s.envs)} are managed by {rng.choice(s.people)}.",
        ],
    )


def backup_bucket(rng: random.Random, s: Scene) -> Fact:
    """Where a service's backups are written."""
    service, service2 = rng.sample(s.services, 2)
    region = rng.choice(s.regions)
    bucket = f"{s.team}-{service}-backups-{rng.randint(100, 999)}"
    bucket2 = f"{s.team}-{service2}-snapshots-{rng.randint(100, 999)}"
    return Fact.pick(
        rng,
        f"bucket:{service}",
        [
            f"{service} backups are written to s3://{bucket} in {region}.",
            f"Nightly {service} dumps land in the {bucket} bucket ({region}).",
        ],
        f"{service} backup target s3://{bucket} ({region})",
        [
            f"Which bucket stores the {service} backups?",
            f"Where do the {service} backups end up?",
        ],
        bucket,
        [
            f"{service2} backups are written to s3://{bucket2}.",
            f"{service} backups run every {rng.randint(2, 12)} hours.",
            f"Restoring {service} from backup took {rng.randint(5, 90)} minutes in the last drill.",
        ],
    )


def timeout(rng: random.Random, s: Scene) -> Fact:
    """A client's request timeout."""
    service, service2 = rng.sample(s.services, 2)
    n, n2 = rng.sample(range(3, 120), 2)
    return Fact.pick(
        rng,
        f"timeout:{service}",
        [
            f"The {service} client gives up after {n} seconds.",
            f"Request timeout for {service} is set to {n}s in the shared settings.",
        ],
        f"{service} client timeout={n}s",
        [
            f"What request timeout does the {service} client use?",
            f"How long does the {service} client wait before it gives up on a request?",
        ],
        f"{n} seconds",
        [
            f"The {service2} client gives up after {n2} seconds.",
            f"{service} retries {rng.randint(2, 6)} times with exponential backoff.",
            f"p99 latency of {service} is {rng.randint(150, 900)} ms.",
        ],
    )


def feature_flag(rng: random.Random, s: Scene) -> Fact:
    """The flag that gates a feature."""
    feature, feature2 = rng.sample(s.features, 2)
    slug = feature.lower().replace(" ", "_").replace("-", "_")
    flag = f"ff_{slug}_{rng.choice(['v2', 'rollout', 'beta', 'enabled'])}"
    flag2 = f"ff_{feature2.lower().replace(' ', '_').replace('-', '_')}"
    return Fact.pick(
        rng,
        f"flag:{feature}",
        [
            f"The new {feature} ships behind the feature flag {flag}.",
            f"Toggle {flag} to turn the new {feature} on.",
        ],
        f"{feature} gated by {flag}",
        [
            f"Which feature flag gates the new {feature}?",
            f"What do I toggle to enable the new {feature}?",
        ],
        flag,
        [
            f"The {feature2} flag is {flag2}.",
            f"{feature} is live for {rng.randint(1, 60)}% of accounts on {rng.choice(s.envs)}.",
            f"Support asked when {feature} reaches every customer.",
        ],
    )


def rate_limit(rng: random.Random, s: Scene) -> Fact:
    """An external API's rate limit on our plan."""
    vendor, vendor2 = rng.sample(s.vendors, 2)
    n, n2 = rng.sample(range(60, 3000, 20), 2)
    return Fact.pick(
        rng,
        f"ratelimit:{vendor}",
        [
            f"Our {vendor} plan allows {n} requests per minute.",
            f"{vendor} throttles us at {n} requests a minute.",
        ],
        f"{vendor} quota {n} req/min",
        [
            f"What rate limit does {vendor} apply to our account?",
            f"How many requests per minute may we send to {vendor}?",
        ],
        f"{n} requests per minute",
        [
            f"{vendor2} allows {n2} requests per minute.",
            f"{vendor} answered {rng.randint(10, 900)} requests with HTTP 429 yesterday.",
            f"The {vendor} SDK already backs off on rate-limit errors.",
        ],
    )


def schedule(rng: random.Random, s: Scene) -> Fact:
    """When a service's nightly job runs."""
    service, service2 = rng.sample(s.services, 2)
    at, at2 = (f"{h:02d}:{m:02d}" for h, m in zip(rng.sample(range(24), 2), (10, 40), strict=True))
    return Fact.pick(
        rng,
        f"schedule:{service}",
        [
            f"The {service} nightly job runs at {at} UTC.",
            f"Cron fires the {service} nightly batch at {at} UTC.",
        ],
        f"cron {service}-nightly at {at} UTC",
        [
            f"When does the {service} nightly job run?",
            f"At what time is the {service} nightly batch scheduled?",
        ],
        f"{at} UTC",
        [
            f"The {service2} nightly job runs at {at2} UTC.",
            f"The {service} nightly job took {rng.randint(3, 50)} minutes last night.",
            f"The {service} nightly job has no alert on failure.",
        ],
    )


BUILDERS: tuple[Builder, ...] = (
    port,
    version,
    secret_name,
    backup_bucket,
    timeout,
    feature_flag,
    rate_limit,
    schedule,
    incidents.approval,
    incidents.deadline,
    incidents.on_call,
    incidents.ticket,
    incidents.commit,
    incidents.meeting,
)


def draw_facts(rng: random.Random, scene: Scene, count: int) -> list[Fact]:
    """`count` facts of distinct kinds about the scene."""
    kinds = rng.sample(BUILDERS, min(count, len(BUILDERS)))
    return [build(rng, scene) for build in kinds]
