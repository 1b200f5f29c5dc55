"""The scheduled scan service (`camscan serve`): sites, schedules, scan history and the HTTP API.

store/      SQLAlchemy models, the database, Alembic migrations shipped in the package
ingest.py   a ScanReport JSON -> stored verbatim + the derived inventory (devices, observations, findings)
jobs.py     the job interface between the scheduler and whatever runs a scan (executors)
local.py    the local executor: `python -m scanner scan` in a child process with a time limit
scheduler.py cron per site, one scan per site at a time, leader election across processes
api/        the FastAPI app (docs/service.md's contract)
web/        the dashboard: server-rendered pages on the same app (logins, overview, site, device, scan, admin)
commands.py the `camscan serve|db|users|tokens|sites` commands, added to the CLI by `register(app)`
alerts.py   alert events (an outbox written with the ingest), deliveries, the webhook/SMTP worker
lifecycle.py removal after N absent scans, overdue replacements, exceptions in force
register.py the asset register CSV import and its reconciliation with the inventory
pack.py     a site's audit pack (reports, history CSVs, manifest) for GET /api/v1/export
panels.py   the data of the site page's panels (reconciliation, alert rules, audit pack), no markup
"""
