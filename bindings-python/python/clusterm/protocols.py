"""The shapes ``Manager`` accepts for Python components (typing only; any object with
the right methods works, no base class is required)."""

from typing import Any, Dict, Optional, Protocol, Sequence, Union, runtime_checkable

HostOutcome = Union[bool, str, None]


@runtime_checkable
class ConfigPush(Protocol):
    """``Manager(push=...)``: ``run(job)`` returns None (every host ok) or a dict of
    host name to True/None (ok), False (failed) or a reason string (failed); raising
    fails every host with the exception's text. ``job`` is a ``clusterm.PushJob``."""

    def run(self, job: Any) -> Optional[Dict[str, HostOutcome]]:
        """Runs ``job.action`` over ``job.hosts`` and reports each host's outcome."""
        ...


@runtime_checkable
class Discovery(Protocol):
    """``Manager(discovery=...)``: ``members()`` returns ``clusterm.Member`` objects and
    is polled every ``poll_interval`` seconds (attribute, default 1.0); an optional
    ``enroll(addrs, vars)`` returns a dict of vars for the discover playbook."""

    def members(self) -> Sequence[Any]:
        """The current members, alive or not."""
        ...
