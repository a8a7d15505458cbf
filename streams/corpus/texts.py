"""Sentence templates for the chat side of a session; `Scene.fill` completes the `{slots}`.

Templates talk about the same subjects as the facts (ports, approvals, versions, on-call,
backups, timeouts, tickets, flags) without stating a planted value, so topic alone does not
single out the message that holds a fact.
"""

from __future__ import annotations

from streams.corpus.vocabulary import pool

RESEARCH_TASKS = pool(
    "Investigate why {service} latency on {env} doubled since the last deploy and write up what "
    "you find.|"
    "Put together a briefing on our {vendor} integration: costs, limits, owners and open "
    "incidents.|"
    "Audit how {service} is configured on {env} ahead of the {project} cutover.|"
    "Research whether we can move the {service} backups to a cheaper storage tier.|"
    "Find out why the {service} nightly job keeps overrunning and who should own the fix."
)
CODING_TASKS = pool(
    "Fix the flaky test in {path}: it fails about one run in {n} on CI.|"
    "Add retries with backoff to the {vendor} client in {path}.|"
    "Upgrade {lib} and fix whatever breaks in the {service} service.|"
    "Refactor the {service} settings so every timeout is read from one place.|"
    "Track down the {symptom} in {service} and send a patch with a regression test."
)
TASK_CHANGES = pool(
    "Change of plans: park that. {task}|"
    "Stop there, something more urgent came up. {task}|"
    "Let's leave the current thread for now. New priority: {task}"
)
ASSISTANT_LEADS = pool(
    "Let me check that.|Looking at the {service} side first.|I'll pull the data for {env}.|"
    "Checking before I draw conclusions.|Next step: verify this against {env2}."
)
USER_FOLLOW_UPS = pool(
    "Can you also check whether {env} behaves the same way?|"
    "{person} is asking for an update on {service}, what do we know so far?|"
    "Don't touch the {env} {store} settings without asking me first.|"
    "Keep the write-up short, {person} only reads the first paragraph.|"
    "Is the {symptom} related to the {lib} upgrade or is that a coincidence?|"
    "Please look at the {vendor} side too, we had trouble with them in {month}.|"
    "What would you need from {person} to finish this?|"
    "Skip the {service} dashboards, they are known to be wrong this week.|"
    "How confident are you in that? {person} remembers it differently.|"
    "Fine, go ahead, but list every config change you make.|"
    "Can you double-check the numbers against last {day}'s deploy?|"
    "Is there a ticket for this already or should I file one?|"
    "{person} says the {project} timeline may slip, keep that in mind.|"
    "Ignore the alerts from {service} on {env}, that is a known false positive."
)
ASSISTANT_NOTES = pool(
    "The {service} error rate on {env} rose from {pct}% to {pct2}% right after the {day} "
    "deploy.|"
    "I checked the {env} {store} settings; nothing obviously wrong, connection limits look "
    "normal.|"
    "p95 latency for {service} is {ms} ms, p99 {ms2} ms; most of it is spent waiting on the "
    "{store}.|"
    "The {vendor} client already retries {n} times, so the extra load may come from us.|"
    "{person} owned the {service} migration last quarter; worth asking about the history.|"
    "The runbook for {service} on {env} is out of date: it still mentions the old {store}.|"
    "Nothing in the {lib} changelog explains the {symptom} directly.|"
    "I could not find an owner for the {service} nightly job in the service catalog.|"
    "The {project} plan lists {service} as a dependency but gives no deadline for it.|"
    "Next I will compare the {env} settings with {env2} to narrow this down.|"
    "The {symptom} appears in {n} of the last {big} requests, so it is rare but real.|"
    "{vendor} status page shows no incident for the window we care about.|"
    "The feature flags for {feature} differ between {env} and {env2}.|"
    "Backups for {service} completed every night this week according to the job history.|"
    "The on-call rotation for {service} changed recently; the pager history is incomplete.|"
    "The deploy pipeline for {service} pins {lib}, so upgrading needs a lockfile change.|"
    "I will summarise the findings so far before looking at the {vendor} logs.|"
    "Timeout settings for {service} are spread over three files, which explains the confusion.|"
    "The {store} on {env} was restarted {n} times last week, each time during the nightly job."
)
ASSISTANT_CODING = pool(
    "The failing assertion is in {path}; the fixture builds a {noun} without a timeout.|"
    "I will read {path} next to see how the {vendor} client is constructed.|"
    "The retry loop in {path} swallows the exception, which hides the real error.|"
    "Tests pass locally with {lib} pinned; the failure only shows up on CI.|"
    "{verb}_{noun} is called twice per request, which doubles the load on the {store}.|"
    "I am adding a regression test that reproduces the {symptom} first.|"
    "The settings module reads {service} timeouts from the environment and from YAML.|"
    "This patch touches {n} files; the interesting change is in {path}.|"
    "CI runs on a different {lib} version than my local environment.|"
    "The {service} handler does not close its {store} connection on error.|"
    "I will run the full {service} suite before changing anything else.|"
    "The test depends on wall-clock time; injecting a clock should make it deterministic."
)
SCRATCHPAD = pool(
    "- checked {service} on {env}: nothing unusual\n- todo: ask {person} about {project}\n"
    "- open question: does the {symptom} predate the {lib} upgrade?|"
    "- hypothesis: the {store} on {env} is saturated during the nightly job\n- evidence so "
    "far: {n} slow queries, {pct}% cache misses\n- next: compare with {env2}|"
    "- plan: read {path}, then {path2}\n- do not touch the {env} settings\n- remember to list "
    "config changes for {person}|"
    "- {vendor} looks fine\n- {service} error budget at {pct}%\n- need numbers for the "
    "write-up: latency, errors, cost"
)
PROSE = pool(
    "{service} talks to the {store} through a pooled client configured per environment.|"
    "The {env} environment mirrors production except for the {store} size and the flags.|"
    "Every {service} deploy goes through {env} first and waits for {person}'s review.|"
    "Rate limits on external APIs such as {vendor} are enforced per account, not per host.|"
    "Backups are encrypted at rest and kept for {n} days unless legal asks for longer.|"
    "Feature flags are evaluated at request time and cached for {n} seconds.|"
    "On-call engineers acknowledge pages within {n} minutes and escalate after {n2}.|"
    "The {project} program replaces the legacy {service} stack region by region.|"
    "Client timeouts should stay below the load balancer's idle timeout of {n} seconds.|"
    "Postmortems are blameless and published within {n} days of the incident.|"
    "Secrets are injected as environment variables by the deploy system, never committed.|"
    "Library upgrades are batched monthly and pinned in the lockfile by the {team} team.|"
    "Nightly jobs run in UTC and must finish before the {region} business day starts.|"
    "Each ticket needs an owner, a severity and a link to the dashboard that shows it.|"
    "{lib} is used by {service} for {noun} handling and by the {service2} workers.|"
    "The {symptom} was first reported by {person} after a {vendor} maintenance window.|"
    "Ports other than the defaults must be documented in the service catalog entry.|"
    "Approvals for rollbacks and migrations are recorded in the change calendar."
)
