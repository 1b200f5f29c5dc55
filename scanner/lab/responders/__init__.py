"""Protocol responders of the simulated lab: each answers as its real counterpart does, from a Persona."""
