"""Security events: one schema (exported as JSON lines or OCSF 1.1), one store, collectors from the audit log.

::

    from bastion.events import EventStore, collect_audit
    store = EventStore.for_home(vault.settings.home)      # sqlite:///HOME/events.db or $BASTION_EVENTS_URL
    collect_audit(vault, store)                          # incremental: resumes at the stored cursor
    for event in store.events(since=time.time() - 3600):
        print(event.to_jsonl())                          # or json.dumps(event.to_ocsf())

Why OCSF (not ECS): see :mod:`bastion.events.schema`.
"""

from bastion.events.collect import AUDIT_CURSOR, LogReader, collect_audit, events_from_entry
from bastion.events.schema import KINDS, OCSF_VERSION, OUTCOMES, Event
from bastion.events.store import EVENTS_URL_ENV, EventStore, default_events_url

__all__ = [
    "AUDIT_CURSOR",
    "EVENTS_URL_ENV",
    "KINDS",
    "OCSF_VERSION",
    "OUTCOMES",
    "Event",
    "EventStore",
    "LogReader",
    "collect_audit",
    "default_events_url",
    "events_from_entry",
]
