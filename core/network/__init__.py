"""Project networks and address management, ciao style.

Every project gets one network of its own, with IPv4 subnets carved from a
configured pool; a server's port holds one fixed address and a MAC on it.
Allocations live in the datastore, in Neutron's shapes (networks, subnets,
ports, IP allocations), so that no address is ever handed out twice and the
network API can serve the same rows.
"""
