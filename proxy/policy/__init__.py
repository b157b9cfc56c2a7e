"""Trained policies: the file format, validation, selection for any weights and hot reload.

    schema.py      frozen objects (Policy, Context, ArmEstimate, Provenance)
    load.py        parse + validate against the config (PolicyError with key paths)
    write.py       dump / atomic write (round-trips with load)
    select.py      any-preference selection rules
    policyset.py   the immutable set of loaded files, by task (an ActionSource)
    store.py       PolicyStore: atomic reloads, watcher, SIGHUP, metrics
    web.py         aiohttp wiring: cleanup_ctx + /admin/reload, /admin/policies
"""

from proxy.policy.load import PolicyError, load_policy, parse_policy
from proxy.policy.policyset import PolicySet, load_policy_set
from proxy.policy.schema import ArmEstimate, Context, Policy, Provenance
from proxy.policy.store import PolicyStore, ReloadResult

__all__ = [
    "ArmEstimate",
    "Context",
    "Policy",
    "PolicyError",
    "PolicySet",
    "PolicyStore",
    "Provenance",
    "ReloadResult",
    "load_policy",
    "load_policy_set",
    "parse_policy",
]
