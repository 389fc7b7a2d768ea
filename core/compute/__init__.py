"""Compute resources beside the instances: flavors, key pairs, quotas, server groups,
and the node and usage reports the compute API shows.

Plain functions on a SQLAlchemy Session: the compute API calls them inside its
own unit of work, so each change commits together with what depends on it.
"""

from ciaostack.core.compute.flavors import ensure_default_flavors

#: What `ciaostack bootstrap` (and `up`) seed for compute, in identity's bootstrap
#: transaction: the default flavors.
BOOTSTRAP_SEEDS = (ensure_default_flavors,)
