"""'Who is there': one module per protocol, each a pure parser plus a thin async sender."""
