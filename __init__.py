"""ciaostack: a cloud controller on the ciao design that speaks the OpenStack APIs."""
