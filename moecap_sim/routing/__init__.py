"""Routing profiles: how many distinct experts a batch touches, and how load spreads over
expert-parallel ranks.  The cost model asks only this interface; where the numbers come from
(a real trace, a profile fitted to one, or a synthetic assumption) is said by ``source``.
"""

from moecap_sim.routing.base import RoutingProfile, UniformRouting, get_routing_profile

__all__ = ["RoutingProfile", "UniformRouting", "get_routing_profile"]
