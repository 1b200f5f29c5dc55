"""The scheduled scan service (`camscan serve`): sites, schedules, scan history and the HTTP API.

store/      SQLAlchemy models, the database, Alembic migrations shipped in the package
ingest.py   a ScanReport JSON -> stored verbatim + the derived inventory (devices, observations, findings)
jobs.py     the job interface between the scheduler and whatever runs a scan (executors)
local.py    the local executor: `python -m scanner scan` in a child process with a time limit
scheduler.py cron per site, one scan per site at a time, leader election across processes
api/        the FastAPI app (docs/service.md's contract)
web/        the dashboard: server-rendered pages on the same app (logins, overview, site, device, scan, admin)
commands.py the `camscan serve|db|users|tokens|sites` commands, added to the CLI by `register(app)`
"""
