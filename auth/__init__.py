"""People and access: users, org units, roles, local sign-in, sessions, guards."""
