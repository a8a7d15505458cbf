"""Facts about people and incidents: approvals, deadlines, on-call, tickets, commits, meetings."""

from __future__ import annotations

import random

from streams.corpus.conversation import Fact
from streams.corpus.vocabulary import MONTHS, WEEKDAYS, Scene


def approval(rng: random.Random, s: Scene) -> Fact:
    """Who approved a risky change, and when."""
    actions = [
        f"rollback of the {s.services[0]} deploy",
        f"schema migration on {s.envs[0]}",
        f"{s.vendors[0]} contract renewal",
        f"traffic shift to {s.regions[0]}",
        f"key rotation for {s.vendors[1]}",
        f"{s.projects[0]} launch checklist",
    ]
    action, action2 = rng.sample(actions, 2)
    person, person2, person3 = rng.sample(s.people, 3)
    day, day2 = rng.sample(WEEKDAYS, 2)
    return Fact.pick(
        rng,
        f"approval:{action}",
        [
            f"{person} approved the {action} on {day}.",
            f"On {day}, {person} signed off on the {action}.",
            f"The {action} got {person}'s approval on {day}.",
        ],
        f"approval recorded: {action}, approver {person}, {day}",
        [
            f"Who approved the {action}, and on which day?",
            f"Which day was the {action} signed off, and by whom?",
        ],
        f"{person}, {day}",
        [
            f"{person2} asked to hold the {action} until the error rate settles.",
            f"{person3} approved the {action2} on {day2}.",
            f"The {action} needs a second reviewer according to the runbook.",
        ],
    )


def deadline(rng: random.Random, s: Scene) -> Fact:
    """The date a project must be finished by."""
    project, project2 = s.projects
    month, month2 = rng.sample(MONTHS, 2)
    day, day2 = rng.sample(range(2, 29), 2)
    return Fact.pick(
        rng,
        f"deadline:{project}",
        [
            f"The {project} cutover has to be finished by {month} {day}.",
            f"Hard deadline for {project}: {month} {day}, no extensions.",
            f"Legal wants {project} done by {month} {day} at the latest.",
        ],
        f"{project} due {month} {day}",
        [f"What is the deadline for the {project} cutover?", f"By when must {project} be done?"],
        f"{month} {day}",
        [
            f"The {project} kickoff was on {month2} {day2}.",
            f"{project2} wraps up by {month2} {day}.",
            f"{rng.choice(s.people)} expects the {project} scope to grow.",
        ],
    )


def on_call(rng: random.Random, s: Scene) -> Fact:
    """Who holds a service's pager this week."""
    service, service2 = rng.sample(s.services, 2)
    person, person2, person3 = rng.sample(s.people, 3)
    day = rng.choice(WEEKDAYS)
    return Fact.pick(
        rng,
        f"oncall:{service}",
        [
            f"{person} is on call for {service} until {day}.",
            f"This week's {service} pager sits with {person}.",
            f"If {service} pages tonight, it goes to {person}.",
        ],
        f"on-call {service}: {person} until {day}",
        [f"Who is on call for {service} this week?", f"Who holds the {service} pager right now?"],
        person,
        [
            f"{person2} covers the {service2} on-call rotation.",
            f"{person3} updated the {service} on-call handbook.",
            f"The {service} rotation hands over every {day}.",
        ],
    )


def ticket(rng: random.Random, s: Scene) -> Fact:
    """The ticket that tracks a bug."""
    symptom, symptom2 = rng.sample(s.symptoms, 2)
    service = rng.choice(s.services)
    prefix = rng.choice(["OPS", "PAY", "PLAT", "INC", "CORE", "SRE"])
    number, number2 = rng.sample(range(1000, 9999), 2)
    return Fact.pick(
        rng,
        f"ticket:{symptom}",
        [
            f"The {symptom} in {service} is tracked as {prefix}-{number}.",
            f"I filed {prefix}-{number} for the {symptom} we saw in {service}.",
        ],
        f"{symptom} ({service}) -> {prefix}-{number}",
        [
            f"Which ticket tracks the {symptom} in {service}?",
            f"What is the ticket number for the {symptom}?",
        ],
        f"{prefix}-{number}",
        [
            f"{prefix}-{number2} tracks the {symptom2}.",
            f"The {symptom} in {service} showed up again on {rng.choice(WEEKDAYS)}.",
            f"Nobody has been assigned to the {symptom} yet.",
        ],
    )


def commit(rng: random.Random, s: Scene) -> Fact:
    """The commit that introduced a regression."""
    symptom, symptom2 = rng.sample(s.symptoms, 2)
    service = rng.choice(s.services)
    sha, sha2, sha3 = (f"{rng.getrandbits(28):07x}" for _ in range(3))
    person = rng.choice(s.people)
    return Fact.pick(
        rng,
        f"commit:{symptom}",
        [
            f"git bisect points at {sha} as the origin of the {symptom}.",
            f"The {symptom} came in with {sha}, {person}'s refactor of the {service} client.",
        ],
        f"bisect: first bad commit {sha} ({symptom})",
        [f"Which commit introduced the {symptom}?", f"What change caused the {symptom}?"],
        sha,
        [
            f"Commit {sha2} touched the {service} retry logic but looks harmless.",
            f"The {symptom2} was fixed in {sha3}.",
            f"{person} thinks the {symptom} predates the last release.",
        ],
    )


def meeting(rng: random.Random, s: Scene) -> Fact:
    """When an incident's postmortem takes place."""
    service, service2 = rng.sample(s.services, 2)
    day, day2, day3 = rng.sample(WEEKDAYS, 3)
    time = f"{rng.randint(9, 17)}:{rng.choice(['00', '15', '30', '45'])}"
    incident = f"{day} {service} outage"
    return Fact.pick(
        rng,
        f"meeting:{incident}",
        [
            f"The postmortem for the {incident} is on {day2} at {time}.",
            f"We review the {incident} on {day2}, {time}, in the big room.",
        ],
        f"postmortem {incident}: {day2} {time}",
        [
            f"When is the postmortem for the {incident}?",
            f"At what time do we meet about the {incident}?",
        ],
        f"{day2} {time}",
        [
            f"The {service2} incident review moved to {day3}.",
            f"{rng.choice(s.people)} is writing the timeline for the {incident}.",
            f"The {incident} lasted {rng.randint(12, 95)} minutes.",
        ],
    )
