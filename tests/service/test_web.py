"""The dashboard's pages through the real app (the same middleware uvicorn serves), on SQLite and PostgreSQL:
logging in (good, bad, without CSRF, throttled, over http), roles and site limits, the security headers of
every page, hostile strings shown as text, the lifecycle form and its audit trail, scans, admin pages."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from sqlalchemy import func, select

from scanner.report.export import verify_document
from scanner.service.api import Service
from scanner.service.api.app import asgi
from scanner.service.store.models import AuditEntry, Device, LoginFailure, Site, User, WebSession
from scanner.service.web import sessions
from tests.service.conftest import TestClient
from tests.service.web_helpers import HOSTILE_SITE, PASSWORD, Seeded, csrf_of, logged_in, login


def csp_allows_no_inline_script(header: str) -> bool:
    directives = {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src"))
    return script is not None and "'unsafe-inline'" not in script


# ---- logging in ------------------------------------------------------------------------------------------


def test_login_sets_a_secure_httponly_session_and_redirects_to_the_overview(client: TestClient, seeded: Seeded) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="password"' in page.text
    assert re.search(r'<input type="hidden" name="csrf" value="[^"]{20,}">', page.text)
    r = client.post("/login", data={"email": "Operator@Council.example", "password": PASSWORD,
                                     "csrf": csrf_of(page.text)})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "camscan_session" in v)
    assert cookie.startswith("__Host-camscan_session=")
    lowered = cookie.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered and "path=/" in lowered
    overview = client.get("/")
    assert overview.status_code == 200
    assert "operator@council.example" in overview.text
    with seeded.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1
        assert "user.login" in s.scalars(select(AuditEntry.action)).all()


def test_a_wrong_password_answers_401_and_sets_no_session(client: TestClient, seeded: Seeded) -> None:
    r = login(client, "operator@council.example", "not the password at all")
    assert r.status_code == 401
    assert "The email or password is wrong." in r.text
    assert not [v for k, v in r.headers.multi_items() if k == "set-cookie" and "camscan_session" in v]
    assert client.get("/").status_code == 303  # still not logged in
    r = login(client, "nobody@council.example", PASSWORD)  # an unknown email looks the same
    assert r.status_code == 401
    with seeded.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0


def test_login_without_the_csrf_field_is_refused(client: TestClient, seeded: Seeded) -> None:
    client.get("/login")  # the CSRF cookie is set, but the form field is missing or wrong
    for data in ({"email": "operator@council.example", "password": PASSWORD},
                 {"email": "operator@council.example", "password": PASSWORD, "csrf": "forged"}):  # fmt: skip
        r = client.post("/login", data=data)
        assert r.status_code == 403
        assert not [v for k, v in r.headers.multi_items() if k == "set-cookie" and "camscan_session" in v]
    with seeded.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0


def test_login_attempts_are_throttled_per_email_and_client(seeded: Seeded) -> None:
    app = asgi(Service(seeded.db))
    with TestClient(app, base_url="https://testserver", follow_redirects=False, client=("203.0.113.9", 1)) as c:  # type: ignore[arg-type]
        for _ in range(sessions.FAILS_PER_KEY):
            assert login(c, "operator@council.example", "wrong password!").status_code == 401
        r = login(c, "operator@council.example")  # the right password, but too late
        assert r.status_code == 429 and "Too many failed attempts" in r.text
        assert int(r.headers["retry-after"]) > 0
        assert login(c, "auditor@council.example").status_code == 303  # another email: fine
    with TestClient(app, base_url="https://testserver", follow_redirects=False, client=("203.0.113.10", 1)) as c:  # type: ignore[arg-type]
        assert login(c, "operator@council.example").status_code == 303  # another client: fine
    with seeded.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 2 * sessions.FAILS_PER_KEY


def test_plain_http_logins_only_from_loopback(seeded: Seeded) -> None:
    app = asgi(Service(seeded.db))
    with TestClient(app, follow_redirects=False, client=("192.0.2.7", 1)) as c:  # type: ignore[arg-type]
        r = login(c, "operator@council.example")
        assert r.status_code == 403 and "use https" in r.text
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 1)) as c:  # type: ignore[arg-type]
        r = login(c, "operator@council.example")
        assert r.status_code == 303
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "camscan_session" in v)
        assert cookie.startswith("camscan_session=") and "secure" not in cookie.lower()  # it would never return
        assert "httponly" in cookie.lower()
        assert c.get("/").status_code == 200


def test_logout_ends_the_session_on_the_server(client: TestClient, seeded: Seeded) -> None:
    logged_in(client, "auditor@council.example")
    stolen = dict(client.cookies)
    page = client.get("/")
    assert client.post("/logout", data={}).status_code == 403  # no CSRF token: not logged out
    r = client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with seeded.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0
    client.cookies.clear()
    for k, v in stolen.items():  # the old cookie value is worth nothing now
        client.cookies.set(k, v)
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_pages_without_a_session_redirect_to_login_and_come_back(client: TestClient, seeded: Seeded) -> None:
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data={"action": "removed"})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"  # nothing changed, no form to resend
    r = client.get(f"/devices/{seeded.hik}")
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/devices/{seeded.hik}"
    page = client.get(r.headers["location"])
    assert f'name="next" value="/devices/{seeded.hik}"' in page.text
    r = client.post("/login", data={"email": "auditor@council.example", "password": PASSWORD,
                                    "csrf": csrf_of(page.text), "next": f"/devices/{seeded.hik}"})  # fmt: skip
    assert r.headers["location"] == f"/devices/{seeded.hik}"
    client.cookies.clear()
    page = client.get("/login")
    r = client.post("/login", data={"email": "auditor@council.example", "password": PASSWORD,
                                    "csrf": csrf_of(page.text), "next": "//evil.example/"})  # fmt: skip
    assert r.headers["location"] == "/"  # never to another host


# ---- the overview and its chart -------------------------------------------------------------------------------


def _row(html: str, name: str) -> list[str]:
    row = html.split(f">{name}</a>", 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in row.split("<td")[1:]]


def test_overview_lists_every_site_with_its_counts_and_a_chart(client: TestClient, seeded: Seeded) -> None:
    html = logged_in(client, "auditor@council.example").get("/").text
    town = _row(html, "Town Hall")
    assert [c.split(">", 1)[-1].strip() for c in town[:4]] == ["2", "2", "1", "0"]  # devices, cameras, flagged, overdue
    assert "succeeded" in town[5]
    assert [c.split(">", 1)[-1].strip() for c in _row(html, "Annex")[:3]] == ["1", "1", "1"]
    assert 'href="/sites/town-hall?flagged=yes&amp;status=present">1<' in html
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in svg and "Flagged devices over time" in svg
    assert svg.count('<g class="series"') == 3
    town_series = svg.split('data-site="town-hall"', 1)[1].split("</g>", 1)[0]
    assert town_series.count("<circle") == 3
    assert "Town Hall: 0 flagged" in town_series and "Town Hall: 1 flagged" in town_series


def test_overdue_counts_flagged_devices_past_their_due_date(client: TestClient, seeded: Seeded) -> None:
    from datetime import date

    with seeded.db.session() as s:
        d = s.get(Device, seeded.hik)
        assert d is not None
        d.lifecycle, d.replacement_due = "replacement_planned", date(2020, 1, 1)
    html = logged_in(client, "auditor@council.example").get("/").text
    assert [c.split(">", 1)[-1].strip() for c in _row(html, "Town Hall")[:4]][3] == "1"
    assert "badge overdue" in client.get("/sites/town-hall").text


# ---- roles and site limits ---------------------------------------------------------------------------------------


def test_a_site_limited_person_sees_their_site_alone(client: TestClient, seeded: Seeded) -> None:
    html = logged_in(client, "annex@council.example").get("/").text
    assert ">Annex</a>" in html and "Town Hall" not in html and "Depot" not in html
    assert client.get("/sites/annex").status_code == 200
    assert client.get(f"/devices/{seeded.annex_device}").status_code == 200
    for path in ("/sites/town-hall", f"/devices/{seeded.hik}", f"/scans/{seeded.scans[0]}",
                 f"/scans/{seeded.scans[0]}/report.json", "/admin/audit", "/admin/users"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 403, path
        assert r.headers["content-type"].startswith("text/html")


def test_only_admins_reach_the_admin_pages(client: TestClient, seeded: Seeded) -> None:
    logged_in(client, "operator@council.example")
    for path in ("/admin/sites", "/admin/users", "/admin/tokens"):
        assert client.get(path).status_code == 403, path
    assert client.get("/admin/audit").status_code == 200  # read-only, for anyone who sees every site
    client.cookies.clear()
    logged_in(client, "admin@council.example")
    for path in ("/admin/sites", "/admin/users", "/admin/tokens", "/admin/audit"):
        assert client.get(path).status_code == 200, path


def test_the_auditor_cannot_change_a_lifecycle(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "auditor@council.example").get(f"/devices/{seeded.hik}")
    assert page.status_code == 200 and 'id="plan-form"' not in page.text
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data={"csrf": csrf_of(page.text), "action": "plan",
                    "replacement_due": "2027-01-31", "replacement_owner": "Facilities"})  # fmt: skip
    assert r.status_code == 403
    with seeded.db.session() as s:
        d = s.get(Device, seeded.hik)
        assert d is not None and d.lifecycle is None
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "device.lifecycle")).all() == []


# ---- the lifecycle form ----------------------------------------------------------------------------------------


def test_planning_a_replacement_saves_it_and_writes_the_audit_log(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "operator@council.example").get(f"/devices/{seeded.hik}")
    assert 'id="plan-form"' in page.text
    token = csrf_of(page.text)
    form = {"action": "plan", "replacement_due": "2027-01-31", "replacement_owner": "Facilities <team>",
            "note": "budget approved"}  # fmt: skip
    assert client.post(f"/devices/{seeded.hik}/lifecycle", data=form).status_code == 403  # no CSRF token
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data={**form, "csrf": token})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/devices/{seeded.hik}?saved=1")
    with seeded.db.session() as s:
        d = s.get(Device, seeded.hik)
        assert d is not None
        assert (d.lifecycle, str(d.replacement_due), d.replacement_owner, d.lifecycle_note) == (
            "replacement_planned", "2027-01-31", "Facilities <team>", "budget approved")  # fmt: skip
        assert d.lifecycle_updated_by == "user:operator@council.example"
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "device.lifecycle")).all()
        assert entry.actor == "user:operator@council.example" and entry.target == f"device:{seeded.hik}"
        assert entry.detail == {"state": "replacement_planned", "replacement_due": "2027-01-31",
                                "replacement_owner": "Facilities <team>", "note": "budget approved"}  # fmt: skip
    html = client.get(r.headers["location"]).text
    assert "Saved." in html and "Facilities &lt;team&gt;" in html and "replacement planned" in html


def test_an_exception_needs_reason_approver_and_expiry(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "operator@council.example").get(f"/devices/{seeded.hik}")
    form = {"csrf": csrf_of(page.text), "action": "exception", "exception_reason": "museum piece"}
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data=form)
    assert r.status_code == 422 and "Please fill in: exception approver, exception expires." in r.text
    assert "museum piece" in r.text  # what was typed is kept
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data={"csrf": csrf_of(page.text), "action": "exception",
                    "exception_reason": "r", "exception_approver": "a", "exception_expires": "31/12/2027"})  # fmt: skip
    assert r.status_code == 422 and "Not saved" in r.text
    form = {"csrf": csrf_of(page.text), "action": "exception", "exception_reason": "r", "exception_approver": "CISO",
            "exception_expires": "2027-12-31"}  # fmt: skip
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data=form)
    assert r.status_code == 303
    r = client.post(f"/devices/{seeded.hik}/lifecycle", data={"csrf": csrf_of(page.text), "action": "removed"})
    assert r.status_code == 303
    with seeded.db.session() as s:
        d = s.get(Device, seeded.hik)
        assert d is not None and d.lifecycle == "removed" and d.exception_approver == "CISO"
        assert len(s.scalars(select(AuditEntry).where(AuditEntry.action == "device.lifecycle")).all()) == 2


# ---- the device, site and scan pages ---------------------------------------------------------------------------


def test_device_page_shows_identity_reasons_findings_with_citations_and_history(
    client: TestClient, seeded: Seeded
) -> None:
    html = logged_in(client, "auditor@council.example").get(f"/devices/{seeded.hik}").text
    assert "Hikvision" in html and "44:19:b6:00:00:11" in html
    assert "http.server/hikvision-app-webs" in html  # the rule behind the identity
    assert "<meter" in html
    findings = html.split('id="findings"', 1)[1].split("</table>", 1)[0]
    assert "https://www.acquisition.gov/far/52.204-25" in findings or "acquisition.gov" in findings
    history = html.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert "10.77.0.11" in history and f"/scans/{seeded.scans[1]}" in history


def test_site_page_filters_sorts_and_lists_scans(client: TestClient, seeded: Seeded) -> None:
    logged_in(client, "auditor@council.example")
    html = client.get("/sites/town-hall").text
    table = html.split('id="devices"', 1)[1].split("</table>", 1)[0]
    assert table.index("10.77.0.11") < table.index("10.77.0.20")  # flagged first by default
    flagged = client.get("/sites/town-hall?flagged=yes").text.split('id="devices"', 1)[1].split("</table>", 1)[0]
    assert "10.77.0.11" in flagged and "10.77.0.20" not in flagged
    axis = client.get("/sites/town-hall?maker=Axis").text.split('id="devices"', 1)[1].split("</table>", 1)[0]
    assert "10.77.0.20" in axis and "10.77.0.11" not in axis
    by_ip = client.get("/sites/town-hall?sort=ip&dir=desc").text.split('id="devices"', 1)[1].split("</table>", 1)[0]
    assert by_ip.index("10.77.0.20") < by_ip.index("10.77.0.11")
    scans = html.split('id="scans"', 1)[1].split("</table>", 1)[0]
    assert all(f"/scans/{sid}" in scans for sid in seeded.scans)
    assert f"/scans/{seeded.scans[1]}#diff" in scans
    assert client.get("/sites/town-hall?page=abc&sort=evil&flagged=maybe").status_code == 200
    assert client.get("/sites/nowhere").status_code == 404


def test_scan_page_shows_summary_diff_and_downloads_with_the_session(client: TestClient, seeded: Seeded) -> None:
    logged_in(client, "auditor@council.example")
    html = client.get(f"/scans/{seeded.scans[1]}").text
    diff = html.split('id="diff"', 1)[1]
    assert f'href="/devices/{seeded.hik}">10.77.0.11</a>' in diff.split("Gone devices", 1)[0]  # new since scan 0
    assert f'/scans/{seeded.scans[0]}"' in diff
    assert "has no earlier succeeded scan" in client.get(f"/scans/{seeded.scans[0]}").text
    raw = client.get(f"/scans/{seeded.scans[1]}/report.json")
    assert raw.status_code == 200 and verify_document(json.loads(raw.content))[0]
    report = client.get(f"/scans/{seeded.scans[1]}/report.html")
    assert report.status_code == 200 and "<html" in report.text
    assert csp_allows_no_inline_script(report.headers["content-security-policy"])
    assert client.get(f"/scans/{seeded.scans[1]}/report.csv").headers["content-type"].startswith("text/csv")
    assert client.get(f"/scans/{seeded.scans[1]}/report.exe").status_code == 404
    assert client.get("/scans/no-such-scan").status_code == 404


# ---- security headers, hostile strings ----------------------------------------------------------------------------


def test_every_page_has_a_csp_without_inline_script(client: TestClient, seeded: Seeded) -> None:
    pages = ["/login", "/static/camscan.css", "/no-such-page"]
    for path in pages:
        r = client.get(path)
        assert csp_allows_no_inline_script(r.headers["content-security-policy"]), path
    logged_in(client, "admin@council.example")
    pages = ["/", "/sites/town-hall", "/sites/depot", f"/devices/{seeded.hik}", f"/devices/{seeded.hostile}",
             f"/scans/{seeded.scans[2]}", "/admin/sites", "/admin/users", "/admin/tokens", "/admin/audit",
             "/devices/999999", "/sites/none"]  # fmt: skip
    for path in pages:
        r = client.get(path)
        assert r.status_code in (200, 404), path
        assert r.headers["content-type"].startswith("text/html"), path
        header = r.headers["content-security-policy"]
        assert csp_allows_no_inline_script(header) and "script-src 'none'" in header, path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_hostile_strings_render_as_text(client: TestClient, seeded: Seeded) -> None:
    logged_in(client, "admin@council.example")
    for path in ("/", "/sites/depot", f"/devices/{seeded.hostile}", "/admin/sites"):
        html = client.get(path).text
        tags = _Tags()
        tags.feed(html)
        assert not [t for t, _ in tags.tags if t in ("script", "img", "iframe")], path
        assert not [a for _, attrs in tags.tags for a, _ in attrs if a.startswith("on")], path
        assert "<script>document.title" not in html, path
    overview = client.get("/").text
    assert "Depot &lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; &#34;quoted&#34; ünïcode ☃" in overview
    device = client.get(f"/devices/{seeded.hostile}").text
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in device  # the evidence, as text
    assert HOSTILE_SITE not in device


# ---- admin pages ------------------------------------------------------------------------------------------------


def test_a_token_made_on_the_page_is_shown_once_and_works(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "admin@council.example").get("/admin/tokens")
    r = client.post("/admin/tokens", data={"csrf": csrf_of(page.text), "name": "nightly export", "role": "auditor",
                                           "site": "annex"})  # fmt: skip
    assert r.status_code == 201
    token = re.search(r'<code class="token" id="new-token">([^<]+)</code>', r.text)
    assert token
    api = client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert [s["slug"] for s in api.json()["items"]] == ["annex"]
    listing = client.get("/admin/tokens").text
    assert "nightly export" in listing and token.group(1) not in listing
    token_id = re.search(r'action="/admin/tokens/(\d+)/revoke"', listing)
    assert token_id
    assert client.post(f"/admin/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf_of(listing)}).status_code == 303
    assert client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code == 401


def test_admin_adds_a_user_limited_to_a_site_and_disables_them(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "admin@council.example").get("/admin/users")
    r = client.post("/admin/users", data={"csrf": csrf_of(page.text), "email": "new@council.example",
                                          "role": "auditor", "site": "annex", "password": "short"})  # fmt: skip
    assert r.status_code == 422 and "at least 12 characters" in r.text and "short" not in r.text.split("<form")[1]
    r = client.post("/admin/users", data={"csrf": csrf_of(page.text), "email": "new@council.example",
                                          "role": "auditor", "site": "annex", "password": PASSWORD})  # fmt: skip
    assert r.status_code == 303
    with TestClient(asgi(Service(seeded.db)), base_url="https://testserver", follow_redirects=False) as other:  # type: ignore[arg-type]
        logged_in(other, "new@council.example")
        assert "Town Hall" not in other.get("/").text
        listing = client.get("/admin/users").text
        row = listing.split("<td>new@council.example</td>", 1)[1].split("</tr>", 1)[0]
        user_id = re.findall(r'action="/admin/users/(\d+)/disable"', row)[0]
        assert client.post(f"/admin/users/{user_id}/disable", data={"csrf": csrf_of(listing)}).status_code == 303
        assert other.get("/").status_code == 303  # logged out at once
    with seeded.db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == "user:new@council.example")).all()
        assert actions == ["user.create", "user.site", "user.login", "user.disable"]


def test_admin_adds_a_site_through_the_api_checks(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "admin@council.example").get("/admin/sites")
    bad = client.post("/admin/sites", data={"csrf": csrf_of(page.text), "slug": "Bad Slug!", "name": "x",
                                            "targets": "10.90.0.0/24"})  # fmt: skip
    assert bad.status_code == 422
    good = client.post("/admin/sites", data={"csrf": csrf_of(page.text), "slug": "library", "name": "Library",
                                             "targets": "10.90.0.0/24", "schedule": "0 3 * * *"})  # fmt: skip
    assert good.status_code == 303
    assert ">Library</a>" in client.get("/").text
    dup = client.post("/admin/sites", data={"csrf": csrf_of(page.text), "slug": "library", "name": "Library",
                                            "targets": "10.90.0.0/24"})  # fmt: skip
    assert dup.status_code == 409


def _user_row(listing: str, email: str) -> str:
    return listing.split(f"<td>{email}</td>", 1)[1].split("</tr>", 1)[0]


def _access(client: TestClient, user_id: object, csrf: str, role: str, site: str = "") -> int:
    return client.post(f"/admin/users/{user_id}/access", data={"csrf": csrf, "role": role, "site": site}).status_code


def test_admin_changes_a_persons_role_and_site_and_they_are_logged_out(client: TestClient, seeded: Seeded) -> None:
    listing = logged_in(client, "admin@council.example").get("/admin/users").text
    token = csrf_of(listing)
    assert "/access" not in _user_row(listing, "admin@council.example")  # no way to demote yourself
    user_id = re.findall(r'action="/admin/users/(\d+)/access"', _user_row(listing, "auditor@council.example"))[0]
    with TestClient(asgi(Service(seeded.db)), base_url="https://testserver", follow_redirects=False) as other:  # type: ignore[arg-type]
        logged_in(other, "auditor@council.example")
        assert "Town Hall" in other.get("/").text
        bad = client.post(f"/admin/users/{user_id}/access", data={"csrf": token, "role": "root", "site": ""})
        assert bad.status_code == 422 and "role must be one of" in bad.text
        assert _access(client, user_id, token, "operator", "nowhere") == 422
        assert other.get("/").status_code == 200  # nothing changed yet: still logged in
        assert _access(client, user_id, token, "operator", "annex") == 303
        assert other.get("/").status_code == 303  # their sessions ended with the change
        logged_in(other, "auditor@council.example")
        overview = other.get("/").text
        assert "Town Hall" not in overview and "Annex" in overview  # limited to the annex now
        assert 'action="/sites/annex/scan"' in other.get("/sites/annex").text  # and an operator there
    assert _access(client, user_id, "stale", "admin") == 403
    with seeded.db.session() as s:
        admin_id = s.scalar(select(User.id).where(User.email == "admin@council.example"))
    assert _access(client, admin_id, token, "auditor") == 409
    with seeded.db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == "user:auditor@council.example")).all()
        assert actions.count("user.access") == 1
    as_operator = logged_in(client, "operator@council.example")
    assert _access(as_operator, user_id, csrf_of(as_operator.get("/").text), "admin") == 403


def test_admin_pauses_and_deletes_a_site_with_confirmation(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "admin@council.example").get("/admin/sites").text
    assert 'action="/admin/sites/annex/enable"' in page
    assert client.post("/admin/sites/annex/enable", data={"csrf": csrf_of(page), "enable": "0"}).status_code == 303
    with seeded.db.session() as s:
        assert s.scalar(select(Site.enabled).where(Site.slug == "annex")) is False
    assert ">Resume</button>" in client.get("/admin/sites").text
    r = client.post("/admin/sites/annex/delete", data={"csrf": csrf_of(page), "confirm": "annexe"})
    assert r.status_code == 422 and "to confirm" in r.text
    with seeded.db.session() as s:
        assert s.scalar(select(Site.id).where(Site.slug == "annex")) is not None
    r = client.post("/admin/sites/annex/delete", data={"csrf": csrf_of(page), "confirm": "annex"})
    assert r.status_code == 303
    with seeded.db.session() as s:
        assert s.scalar(select(Site.id).where(Site.slug == "annex")) is None
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == "site:annex")).all()
        assert "site.update" in actions and "site.delete" in actions
    assert client.post("/admin/sites/annex/delete", data={"csrf": csrf_of(page), "confirm": "annex"}).status_code == 404
    as_operator = logged_in(client, "operator@council.example")
    token = csrf_of(as_operator.get("/").text)
    assert as_operator.post("/admin/sites/depot/delete", data={"csrf": token, "confirm": "depot"}).status_code == 403


def test_forms_only_as_urlencoded(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "operator@council.example").get(f"/devices/{seeded.hik}")
    r = client.post(f"/devices/{seeded.hik}/lifecycle", content=json.dumps({"csrf": csrf_of(page.text)}),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 415


def test_scan_now_queues_a_scan_for_operators_only(client: TestClient, seeded: Seeded) -> None:
    page = logged_in(client, "operator@council.example").get("/sites/annex")
    assert 'action="/sites/annex/scan"' in page.text
    r = client.post("/sites/annex/scan", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"].startswith("/scans/")
    queued = client.get(r.headers["location"])
    assert "queued" in queued.text and '<meta http-equiv="refresh" content="5">' in queued.text
    again = client.post("/sites/annex/scan", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "already queued or running" in again.text
    client.cookies.clear()
    page = logged_in(client, "auditor@council.example").get("/sites/town-hall")
    assert 'action="/sites/town-hall/scan"' not in page.text
    assert client.post("/sites/town-hall/scan", data={"csrf": csrf_of(page.text)}).status_code == 403


def test_users_add_limits_a_person_to_a_site(client: TestClient, seeded: Seeded, db_url: str) -> None:
    from typer.testing import CliRunner

    from scanner.cli import app

    result = CliRunner().invoke(
        app,
        ["users", "add", "caretaker@council.example", "--role", "auditor", "--site", "annex", "--db", db_url],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "site annex" in result.output
    html = logged_in(client, "caretaker@council.example").get("/").text
    assert ">Annex</a>" in html and "Town Hall" not in html
    bad = CliRunner().invoke(
        app, ["users", "add", "x@council.example", "--role", "auditor", "--site", "nowhere", "--db", db_url],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert bad.exit_code == 2


def test_site_panels_and_actions_registered_by_other_modules(client: TestClient, seeded: Seeded) -> None:
    from markupsafe import Markup

    from scanner.service.web import (
        SITE_ACTIONS,
        SITE_PANELS,
        PanelContext,
        SiteAction,
        register_site_action,
        site_panel,
    )

    @site_panel("Test counting", order=20)
    def reconciliation(ctx: PanelContext) -> Markup:
        n = ctx.session.scalar(select(func.count()).select_from(Device).where(Device.site_id == ctx.site.id))
        return ctx.render("panels/failed.html.j2") if n is None else Markup(f"<p>{int(n)} devices to reconcile</p>")

    @site_panel("Test broken", order=10, min_role="operator")
    def broken(ctx: PanelContext) -> Markup:
        raise RuntimeError("a bug in a panel")

    register_site_action(SiteAction("Test action", "/sites/{slug}/test-action"))
    try:
        html = logged_in(client, "operator@council.example").get("/sites/town-hall").text
        assert '<h2 id="panel-test-counting-h">Test counting</h2>' in html
        assert "<p>2 devices to reconcile</p>" in html
        assert html.index("Test broken") < html.index("Test counting")  # by order
        assert "This panel could not be shown" in html  # the broken panel did not break the page
        assert '<a class="button" href="/sites/town-hall/test-action">Test action</a>' in html
        client.cookies.clear()
        html = logged_in(client, "auditor@council.example").get("/sites/town-hall").text
        assert "Test broken" not in html and "Test counting" in html  # min_role
    finally:
        SITE_PANELS[:] = [p for p in SITE_PANELS if p.title not in ("Test counting", "Test broken")]
        SITE_ACTIONS[:] = [a for a in SITE_ACTIONS if a.label != "Test action"]


def test_the_chart_stays_readable_with_many_sites_and_scans() -> None:
    from datetime import UTC, datetime, timedelta

    from scanner.service.web.overview import CHART_POINTS, MARKS_UP_TO, _thin, build_chart

    start = datetime(2025, 1, 1, tzinfo=UTC)
    year = [(start + timedelta(days=d), 40 - d // 10) for d in range(365)]
    thinned = _thin(year)
    assert len(thinned) == CHART_POINTS and thinned[0] == year[0] and thinned[-1] == year[-1]
    chart = build_chart([("Big <site>", "big", thinned), ("Small", "small", year[:5])], hidden=3)
    big, small = chart.series
    assert big.marks == [] and len(small.marks) == 5 <= MARKS_UP_TO  # markers only where they can be told apart
    assert big.path.startswith("M48.0,") and big.path.count(" L") == CHART_POINTS - 1
    assert chart.hidden == 3 and [v for _, v in chart.y_ticks][-1] >= 40
    assert build_chart([]).empty


def test_overdue_on_the_pages_is_the_overdue_of_the_alert(seeded: Seeded) -> None:
    """The overview's SQL and lifecycle.is_overdue (which raises device.overdue) agree on every state."""
    from datetime import date, timedelta

    from scanner.service.lifecycle import is_overdue
    from scanner.service.web.overview import overdue_clause

    today = date(2026, 6, 1)
    past, future = today - timedelta(days=1), today + timedelta(days=1)
    states = [
        ("replacement_planned", past, None, None), ("replacement_planned", future, None, None),
        ("replacement_planned", today, None, None), (None, past, None, None), ("removed", past, None, None),
        ("exception", past, "museum piece", future), ("exception", past, "museum piece", past),
        ("exception", past, "museum piece", today), ("exception", past, None, future), ("flagged", None, None, None),
    ]  # fmt: skip
    with seeded.db.session() as s:
        hik = s.get(Device, seeded.hik)
        assert hik is not None and hik.flagged
        for state, due, reason, expires in states:
            hik.lifecycle, hik.replacement_due = state, due
            hik.exception_reason, hik.exception_expires = reason, expires
            s.flush()
            query = select(func.count()).select_from(Device).where(Device.id == hik.id, overdue_clause(today))
            by_sql = s.scalar(query)
            assert bool(by_sql) == is_overdue(hik, today), (state, due, reason, expires)
