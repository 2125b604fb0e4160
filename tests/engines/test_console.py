"""The web console at /ui, driven in headless Chromium (Debian's, through Playwright; never
`playwright install`): create a warehouse in the console, make a table with PyIceberg, find it
and read its schema and snapshots, create a branch, commit there, see the diff, merge it and see
`main` change; a merge that conflicts names the conflict per table; an S3 gateway key is shown
once and revoked. A screenshot of each page is kept (under $FLOE_ARTIFACTS/console)."""

import os
import shutil
import subprocess

from urllib.parse import quote

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from conftest import LOG_DIR, Floe, authn_config, grant, warehouse_id

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
# The Firefox walks (tests/console-firefox: puppeteer-core over WebDriver BiDi, since Playwright's
# Firefox needs its own patched build).
FIREFOX_WALK = os.path.join(os.path.dirname(__file__), "..", "console-firefox", "walk.mjs")
# Kept for people to look at: under FLOE_ARTIFACTS when set (CI sets it), else with the logs.
SHOTS = os.path.join(os.environ.get("FLOE_ARTIFACTS") or LOG_DIR, "console")


@pytest.fixture(scope="module")
def floe():
    server = Floe("sqlite")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Script errors and policy violations (a refused request, e.g. the 409 of a refused
        # merge, is the page's to show, and the provider's pages are not the console's).
        page.on(
            "console",
            lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None,
        )
        page.errors = errors
        yield page
        browser.close()


def shot(page, name):
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")


def ready(page, fragment):
    """Waits until the view for the URL's hash `fragment` has rendered."""
    page.wait_for_function("f => (document.body.dataset.ready || '').startsWith(f)", arg=fragment, timeout=15000)


def rows(n, start=0):
    return pa.table({"order_id": pa.array(range(start, start + n), pa.int64()), "item": pa.array([f"i{i}" for i in range(start, start + n)])})


def test_console_browses_branches_and_merges(floe, page):
    page.errors.clear()
    page.goto(f"{floe.base}/ui/")
    ready(page, "#/")
    assert "demo" in page.inner_text("#warehouses")
    # A warehouse made in the console.
    root = os.path.join(floe.dir, "data", "warehouses", "console")
    page.fill("#create-warehouse input[name=name]", "console")
    page.fill("#create-warehouse textarea[name=profile]", f'{{"type": "local", "root": "{root}"}}')
    shot(page, "01-warehouses")
    page.click("#create-warehouse button[type=submit]")
    page.wait_for_selector("#namespaces")
    warehouse_id = page.url.split("#/wh/")[1].split("?")[0]

    # A table made with PyIceberg, found in the console.
    catalog = load_catalog("console", type="rest", uri=floe.uri, warehouse="console")
    catalog.create_namespace("sales")
    schema = Schema(NestedField(1, "order_id", LongType(), required=False), NestedField(2, "item", StringType(), required=False))
    orders = catalog.create_table("sales.orders", schema=schema)
    orders.append(rows(3))
    page.reload()
    ready(page, f"#/wh/{warehouse_id}")
    page.click("#namespaces a[data-ns=sales]")
    page.wait_for_selector("#tabulars a:text('orders')")
    shot(page, "02-namespace")
    page.click("#tabulars a:text('orders')")
    page.wait_for_selector("#schema")
    schema_text = page.inner_text("#schema")
    assert "order_id" in schema_text and "long" in schema_text and "item" in schema_text and "string" in schema_text
    snapshots = page.locator("#snapshots tbody tr")
    assert snapshots.count() == 1 and "append" in snapshots.first.inner_text()
    assert "main" in snapshots.first.inner_text()
    shot(page, "03-table")

    # A branch made in the console, a commit there, the diff, the merge.
    page.goto(f"{floe.base}/ui/#/wh/{warehouse_id}/branches")
    ready(page, f"#/wh/{warehouse_id}/branches")
    page.fill("#create-ref input[name=name]", "dev")
    page.click("#create-ref button[type=submit]")
    page.wait_for_selector("#refs td a:text('dev')")
    dev = load_catalog("dev", type="rest", uri=floe.uri, warehouse="console@dev")
    dev.load_table("sales.orders").append(rows(2, start=100))
    page.reload()
    ready(page, f"#/wh/{warehouse_id}/branches")
    page.select_option("#diff-form select[name=from]", "main")
    page.select_option("#diff-form select[name=to]", "dev")
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("#diff-table")
    diff = page.inner_text("#diff-table")
    assert "sales.orders" in diff and "changed" in diff, diff
    # What changed in the table: the branch's snapshot.
    page.click("#diff-table button:text('What changed')")
    page.wait_for_selector("#diff-table tr.detail")
    detail = page.inner_text("#diff-table tr.detail")
    assert "added (append, 2 records, 1 files)" in detail, detail
    shot(page, "04-diff")
    page.select_option("#merge-form select[name=source]", "dev")
    page.select_option("#merge-form select[name=target]", "main")
    page.click("#merge-form button[type=submit]")
    page.wait_for_selector("#merge-result .ok")
    assert "Merged" in page.inner_text("#merge-result")
    shot(page, "05-merged")
    page.select_option("#log-ref", "main")
    ready(page, f"#/wh/{warehouse_id}/branches?log=main")
    assert "merge" in page.inner_text("#commits").lower()

    # main changed: the table has the branch's snapshot now.
    page.goto(f"{floe.base}/ui/#/wh/{warehouse_id}/table/sales/orders")
    ready(page, f"#/wh/{warehouse_id}/table/sales/orders")
    assert page.locator("#snapshots tbody tr").count() == 2
    assert len(catalog.load_table("sales.orders").scan().to_arrow()) == 5

    # Conflicting changes: the refused merge names the table and why.
    with catalog.load_table("sales.orders").transaction() as tx:
        tx.set_properties(owner="main-team")
    with dev.load_table("sales.orders").transaction() as tx:
        tx.set_properties(owner="dev-team")
    page.goto(f"{floe.base}/ui/#/wh/{warehouse_id}/branches")
    ready(page, f"#/wh/{warehouse_id}/branches")
    page.select_option("#merge-form select[name=source]", "dev")
    page.click("#merge-form button[type=submit]")
    page.wait_for_selector("#conflicts")
    conflicts = page.inner_text("#conflicts")
    assert "sales.orders" in conflicts and "owner" in conflicts, conflicts
    shot(page, "06-conflicts")
    assert not page.errors, page.errors


def test_console_shows_a_gateway_key_once_and_revokes_it(floe, page):
    page.errors.clear()
    demo = next(w for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
    page.goto(f"{floe.base}/ui/#/wh/{demo['id']}/keys")
    ready(page, f"#/wh/{demo['id']}/keys")
    page.fill("#create-key input[name=description]", "console test")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key .secret")
    secret = page.inner_text("#new-key .secret")
    assert "secret:" in secret and "demo" in secret
    assert "console test" in page.inner_text("#keys")
    shot(page, "07-key-created")
    # The listing never shows a secret.
    key_id = secret.split("access key id: ")[1].split()[0]
    secret_value = secret.split("secret: ")[1].split()[0]
    page.reload()
    ready(page, f"#/wh/{demo['id']}/keys")
    assert secret_value not in page.content()
    page.click(f"#keys tr:has-text('{key_id}') button")
    page.wait_for_function("id => !document.querySelector('#keys').innerText.includes(id)", arg=key_id, timeout=15000)
    assert not page.errors, page.errors


def test_console_files_are_served_with_a_strict_policy(floe):
    r = requests.get(f"{floe.base}/ui/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert requests.get(f"{floe.base}/ui/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    redirect = requests.get(f"{floe.base}/ui", timeout=10, allow_redirects=False)
    assert redirect.status_code in (301, 308) and redirect.headers["location"] == "/ui/"


def test_console_signs_in_and_disables_what_the_caller_may_not_do(idp, page):
    """With authentication on, the console asks for a sign-in; a reader of a warehouse sees it,
    and the forms to create warehouses, branches and merges are disabled for them."""
    page.errors.clear()
    admin = idp.token()
    floe = Floe("sqlite", config=authn_config(idp, extra_authn='admins = ["idp~minter"]'), token=admin)
    try:
        wid = warehouse_id(floe, admin)
        grant(floe, admin, "warehouse", wid, "user:idp~reader", "select")
        page.goto(f"{floe.base}/ui/")
        page.wait_for_selector("#sign-in")
        shot(page, "08-sign-in")
        page.fill("#sign-in textarea[name=token]", idp.user_token("reader"))
        page.click("#sign-in button[type=submit]")
        page.wait_for_selector("#warehouses")
        assert "demo" in page.inner_text("#warehouses")
        assert page.is_disabled("#create-warehouse button[type=submit]")
        page.goto(f"{floe.base}/ui/#/wh/{wid}/branches")
        ready(page, f"#/wh/{wid}/branches")
        assert page.is_disabled("#create-ref button[type=submit]")
        assert page.is_disabled("#merge-form button[type=submit]")
        assert "You may not merge here." in page.inner_text("main")
        shot(page, "09-reader-branches")
        # The token stays in the tab: never in the address.
        assert "eyJ" not in page.url
    finally:
        page.evaluate("sessionStorage.clear()")
        floe.stop()
    assert not page.errors, page.errors


def signing_in_floe(idp, admin):
    """A Floe whose console signs in through the test provider's public client `floe-console`."""
    return Floe(
        "sqlite",
        config=authn_config(
            idp,
            extra_authn='admins = ["idp~minter"]',
            extra_provider='console-client-id = "floe-console"\nconsole-scopes = ["openid", "catalog"]',
        ),
        token=admin,
    )


def test_console_signs_in_through_the_identity_provider_with_pkce(idp, page):
    """The console's sign-in with the authorization code flow and PKCE (a public client of the
    real OpenID provider): the provider's login and consent pages, then the console calls the
    APIs with the user's token."""
    page.errors.clear()
    admin = idp.token()
    floe = signing_in_floe(idp, admin)
    try:
        wid = warehouse_id(floe, admin)
        grant(floe, admin, "warehouse", wid, "user:idp~carol", "select")
        config = requests.get(f"{floe.base}/ui/config.json", timeout=10)
        assert config.json()["providers"][0]["client-id"] == "floe-console"
        assert idp.issuer in config.headers["content-security-policy"]
        page.goto(f"{floe.base}/ui/")
        page.wait_for_selector("button[data-provider=idp]")
        page.click("button[data-provider=idp]")
        page.wait_for_selector("input[name=login]")
        shot(page, "10-provider-login")
        page.fill("input[name=login]", "carol")
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        page.wait_for_selector("button[type=submit]:has-text('Continue')")
        page.click("button[type=submit]:has-text('Continue')")
        page.wait_for_selector("#warehouses", timeout=20000)
        assert "demo" in page.inner_text("#warehouses")
        assert "code=" not in page.url and "state=" not in page.url
        assert page.is_visible("#sign-out")
        shot(page, "11-signed-in")
        # The session is the user's: Floe recorded who signed in.
        users = requests.get(f"{floe.base}/management/v1/users", headers={"authorization": f"Bearer {admin}"}, timeout=10).json()
        assert any(u["id"] == "idp~carol" for u in users["users"]), users
        page.click("#sign-out")
        page.wait_for_selector("button[data-provider=idp]")
    finally:
        page.evaluate("sessionStorage.clear()")
        floe.stop()
    assert not page.errors, page.errors


def test_console_pages_a_large_namespace(floe, page):
    """A namespace of 150 tables: the console loads 100, then the rest on request, and filters
    what it loaded."""
    page.errors.clear()
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=10).json()["overrides"]["prefix"]
    base = f"{floe.uri}/v1/{prefix}"
    assert requests.post(f"{base}/namespaces", json={"namespace": ["big"]}, timeout=10).status_code == 200
    schema = {"type": "struct", "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}
    with requests.Session() as s:
        for n in range(150):
            r = s.post(f"{base}/namespaces/big/tables", json={"name": f"t{n:03d}", "schema": schema}, timeout=10)
            assert r.status_code == 200, r.text
    demo = next(w for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
    page.goto(f"{floe.base}/ui/#/wh/{demo['id']}?ns=big")
    ready(page, f"#/wh/{demo['id']}?ns=big")
    page.wait_for_selector("#tabulars tbody tr")
    assert page.locator("#tabulars tbody tr").count() == 100
    page.click("button:text('Load more')")
    page.wait_for_function("() => document.querySelectorAll('#tabulars tbody tr').length === 150")
    assert not page.is_visible("button:text('Load more')")
    page.fill("#filter", "t14")
    visible = page.locator("#tabulars tbody tr:visible")
    assert visible.count() == 10, visible.count()
    shot(page, "12-large-namespace")
    # The server searches every namespace, a page at a time.
    assert requests.post(f"{base}/namespaces", json={"namespace": ["other"]}, timeout=10).status_code == 200
    r = requests.post(f"{base}/namespaces/other/tables", json={"name": "T140_copy", "schema": schema}, timeout=10)
    assert r.status_code == 200, r.text
    page.fill("#search", "t14")
    page.click("#finder button")
    page.wait_for_selector("#search-results tbody tr td a")
    rows = page.locator("#search-results tbody tr")
    assert rows.count() == 11, rows.count()
    assert rows.nth(0).inner_text().split("\t")[:2] == ["big", "t140"]
    assert rows.nth(10).inner_text().split("\t")[:2] == ["other", "T140_copy"]
    shot(page, "12-search")
    rows.nth(10).locator("a").click()
    ready(page, f"#/wh/{demo['id']}/table/other/T140_copy")
    assert "T140_copy" in page.inner_text("h1")
    assert not page.errors, page.errors


def test_console_manages_roles_assignees_and_grants(idp, page):
    """As an admin: a role made in the console, a user assigned to it, the role granted `select`
    on a warehouse (the user then sees it) and the grant revoked again."""
    page.errors.clear()
    admin = idp.token()
    floe = Floe("sqlite", config=authn_config(idp, extra_authn='admins = ["idp~minter"]'), token=admin)
    try:
        wid = warehouse_id(floe, admin)
        dana = idp.user_token("dana")
        as_dana = {"authorization": f"Bearer {dana}"}
        assert requests.get(f"{floe.base}/management/v1/whoami", headers=as_dana, timeout=10).status_code == 200
        seen = lambda: [w["name"] for w in requests.get(f"{floe.base}/management/v1/warehouses", headers=as_dana, timeout=10).json()["warehouses"]]
        assert seen() == []
        page.goto(f"{floe.base}/ui/#/access")
        page.wait_for_selector("#sign-in")
        page.fill("#sign-in textarea[name=token]", admin)
        page.click("#sign-in button[type=submit]")
        ready(page, "#/access")
        page.wait_for_selector("#users")
        assert "idp~dana" in page.inner_text("#users")
        page.fill("#create-role input[name=name]", "analysts")
        page.click("#create-role button[type=submit]")
        page.wait_for_selector("#roles td:text('analysts')")
        role_id = page.inner_text("#roles tr:has-text('analysts') code")
        page.click("#roles tr:has-text('analysts') button")
        page.fill("#add-assignee input[name=who]", "user:idp~dana")
        page.click("#add-assignee button[type=submit]")
        page.wait_for_selector("#assignees li:has-text('user:idp~dana')")
        shot(page, "13-access")
        page.goto(f"{floe.base}/ui/#/wh/{wid}/grants")
        ready(page, f"#/wh/{wid}/grants")
        panel = f".grants[data-object='warehouse/{wid}']"
        page.fill(f"{panel} .grant-form input[name=subject]", f"role:{role_id}")
        page.select_option(f"{panel} .grant-form select[name=relation]", "select")
        page.click(f"{panel} .grant-form button[type=submit]")
        page.wait_for_selector(f"{panel} .grants-table td:text('role:{role_id}')")
        shot(page, "14-warehouse-grants")
        assert seen() == ["demo"], "dana sees the warehouse through the role"
        page.click(f"{panel} .grants-table tr:has-text('role:{role_id}') button.revoke")
        page.wait_for_function(
            "([sel, id]) => !document.querySelector(sel).innerText.includes(id)",
            arg=[f"{panel} .grants-table", role_id],
            timeout=15000,
        )
        assert seen() == []

        # A project's grants, on its own page: dana sees the project's warehouse through them.
        project_id = requests.get(f"{floe.base}/management/v1/warehouses/{wid}", headers=as_admin(admin), timeout=10).json()["project-id"]
        page.goto(f"{floe.base}/ui/#/")
        page.wait_for_selector("#projects")
        shot(page, "14-projects")
        page.click(f"#projects a[href='#/project/{project_id}']")
        ready(page, f"#/project/{project_id}")
        assert "demo" in page.inner_text("#project-warehouses")
        give(page, f"project/{project_id}", "user:idp~dana", "select")
        shot(page, "14-project-grants")
        assert seen() == ["demo"], "dana sees the warehouse through the project"
        revoke(page, f"project/{project_id}", "user:idp~dana")
        assert seen() == []

        # A nested namespace's grants (its id percent-encoded), and a view's.
        prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, headers=as_admin(admin), timeout=10).json()["overrides"]["prefix"]
        base = f"{floe.uri}/v1/{prefix}"
        for levels in [["sales"], ["sales", "eu west"]]:
            r = requests.post(f"{base}/namespaces", json={"namespace": levels}, headers=as_admin(admin), timeout=10)
            assert r.status_code == 200, r.text
        nested = quote("sales\x1feu west", safe="")
        r = requests.post(f"{base}/namespaces/{nested}/views", json=view_body("recent", ["sales", "eu west"]), headers=as_admin(admin), timeout=10)
        assert r.status_code == 200, r.text
        view_uuid = r.json()["metadata"]["view-uuid"]
        page.goto(f"{floe.base}/ui/#/wh/{wid}?ns={nested}")
        ready(page, f"#/wh/{wid}")
        give(page, f"namespace/{wid}/sales", "user:idp~dana", "describe", exact=False)
        shot(page, "14-namespace-grants")
        listed = requests.get(f"{base}/namespaces", params={"parent": "sales"}, headers=as_dana, timeout=10)
        assert listed.status_code == 200, listed.text
        assert listed.json()["namespaces"] == [["sales", "eu west"]], listed.text
        namespace_id = quote(f"{wid}/sales\x1feu west", safe="")
        r = requests.get(f"{floe.base}/management/v1/grants/namespace/{namespace_id}", headers=as_admin(admin), timeout=10)
        assert {"subject": "user:idp~dana", "relation": "describe"} in r.json()["grants"], r.text
        loaded = lambda: requests.get(f"{base}/namespaces/{nested}/views/recent", headers=as_dana, timeout=10).status_code
        assert loaded() == 403, "dana may describe the view (through its namespace), not read it"
        page.goto(f"{floe.base}/ui/#/wh/{wid}/view/{nested}/recent")
        ready(page, f"#/wh/{wid}/view/{nested}/recent")
        give(page, f"view/{wid}/{view_uuid}", "user:idp~dana", "select")
        shot(page, "14-view-grants")
        assert loaded() == 200
    finally:
        page.evaluate("sessionStorage.clear()")
        floe.stop()
    assert not page.errors, page.errors


def as_admin(token):
    return {"authorization": f"Bearer {token}"}


def give(page, obj, subject, relation, exact=True):
    """Grants through the grants panel of `obj` (`<type>/<id>`, or the start of it) on the
    current page."""
    panel = f".grants[data-object{'' if exact else '^'}='{obj}']"
    page.wait_for_selector(f"{panel} .grant-form")
    page.fill(f"{panel} .grant-form input[name=subject]", subject)
    page.select_option(f"{panel} .grant-form select[name=relation]", relation)
    page.click(f"{panel} .grant-form button[type=submit]")
    page.wait_for_selector(f"{panel} .grants-table td:text('{subject}')")


def revoke(page, obj, subject):
    panel = f".grants[data-object='{obj}']"
    page.click(f"{panel} .grants-table tr:has-text('{subject}') button.revoke")
    page.wait_for_function(
        "([sel, who]) => !document.querySelector(sel).innerText.includes(who)",
        arg=[f"{panel} .grants-table", subject],
        timeout=15000,
    )


def view_body(name, namespace):
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}
    return {
        "name": name,
        "schema": schema,
        "view-version": {
            "version-id": 1, "timestamp-ms": 1700000000000, "schema-id": 0, "summary": {"engine-name": "spark"},
            "default-namespace": namespace,
            "representations": [{"type": "sql", "sql": "SELECT 1 AS id", "dialect": "spark"}],
        },
        "properties": {},
    }


def test_console_shows_views_soft_deleted_tables_and_tasks(floe, page):
    """A view's SQL and versions; a soft-deleted table undropped from the console; the tasks
    the drop left, with their attempts."""
    page.errors.clear()
    demo = next(w for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
    wid = demo["id"]
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=10).json()["overrides"]["prefix"]
    base = f"{floe.uri}/v1/{prefix}"
    assert requests.post(f"{base}/namespaces", json={"namespace": ["shop"]}, timeout=10).status_code == 200
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}
    view = {
        "name": "recent",
        "schema": schema,
        "view-version": {
            "version-id": 1, "timestamp-ms": 1700000000000, "schema-id": 0, "summary": {"engine-name": "spark"},
            "default-namespace": ["shop"],
            "representations": [
                {"type": "sql", "sql": "SELECT id FROM shop.orders WHERE id > 10", "dialect": "spark"},
                {"type": "sql", "sql": "SELECT id FROM shop.orders WHERE id > 10 -- trino", "dialect": "trino"},
            ],
        },
        "properties": {},
    }
    r = requests.post(f"{base}/namespaces/shop/views", json=view, timeout=10)
    assert r.status_code == 200, r.text
    page.goto(f"{floe.base}/ui/#/wh/{wid}/view/shop/recent")
    ready(page, f"#/wh/{wid}/view/shop/recent")
    page.wait_for_selector("pre")
    text = page.inner_text("main")
    assert "WHERE id > 10 -- trino" in text and "spark" in text and "trino" in text
    shot(page, "15-view")

    # Soft delete: drop, see it listed, undrop from the console.
    r = requests.put(f"{floe.base}/management/v1/warehouses/{wid}/delete-profile", json={"type": "soft", "expiration-seconds": 3600}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(f"{base}/namespaces/shop/tables", json={"name": "orders", "schema": schema}, timeout=10)
    assert r.status_code == 200, r.text
    assert requests.delete(f"{base}/namespaces/shop/tables/orders", timeout=10).status_code == 204
    page.goto(f"{floe.base}/ui/#/wh/{wid}/deleted")
    ready(page, f"#/wh/{wid}/deleted")
    page.wait_for_selector("#deleted td:text('shop.orders')")
    shot(page, "16-deleted")
    page.click("#deleted tr:has-text('shop.orders') button")
    page.wait_for_function("() => !document.querySelector('#deleted').innerText.includes('shop.orders')", timeout=15000)
    assert requests.get(f"{base}/namespaces/shop/tables/orders", timeout=10).status_code == 200

    # Tasks: a purge left by dropping the table for good, with its attempts.
    requests.put(f"{floe.base}/management/v1/warehouses/{wid}/delete-profile", json={"type": "hard"}, timeout=10)
    assert requests.delete(f"{base}/namespaces/shop/tables/orders", params={"purgeRequested": "true"}, timeout=10).status_code == 204
    page.goto(f"{floe.base}/ui/#/wh/{wid}/tasks")
    ready(page, f"#/wh/{wid}/tasks")
    page.wait_for_selector("#tasks tbody tr td:text('purge')")
    page.click("#tasks tr:has-text('purge') button")
    page.wait_for_selector("#task pre")
    assert '"attempts"' in page.inner_text("#task pre")
    shot(page, "17-tasks")
    assert not page.errors, page.errors


def firefox_walk(mode, **env):
    """Runs one walk of tests/console-firefox in Firefox; its output is shown on failure."""
    done = subprocess.run(
        ["node", FIREFOX_WALK, mode],
        env={**os.environ, "FIREFOX": FIREFOX, "FLOE_SHOTS": SHOTS, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"walk {mode}: ok" in done.stdout


def test_console_works_in_firefox(floe):
    """The same console in Firefox: browse to a table's schema and snapshots, make a branch,
    diff and merge, search, make and revoke a gateway key, and create a warehouse."""
    body = {"name": "firefox", "storage-profile": {"type": "local", "root": os.path.join(floe.dir, "data", "warehouses", "firefox")}}
    r = requests.post(f"{floe.base}/management/v1/warehouses", json=body, timeout=10)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    catalog = load_catalog("firefox", type="rest", uri=floe.uri, warehouse="firefox")
    catalog.create_namespace("sales")
    schema = Schema(NestedField(1, "order_id", LongType(), required=False), NestedField(2, "item", StringType(), required=False))
    catalog.create_table("sales.orders", schema=schema).append(rows(3))
    r = requests.post(f"{floe.base}/management/v1/warehouses/{wid}/branches", json={"name": "dev"}, timeout=10)
    assert r.status_code in (200, 201), r.text
    dev = load_catalog("firefox-dev", type="rest", uri=floe.uri, warehouse="firefox@dev")
    dev.load_table("sales.orders").append(rows(2, start=100))
    firefox_walk(
        "browse",
        FLOE_BASE=floe.base,
        FLOE_WAREHOUSE=wid,
        FLOE_NEW_ROOT=os.path.join(floe.dir, "data", "warehouses", "firefox-made"),
    )
    # What the walk did, seen from outside the browser.
    assert len(catalog.load_table("sales.orders").scan().to_arrow()) == 5
    names = [b["name"] for b in requests.get(f"{floe.base}/management/v1/warehouses/{wid}/branches", timeout=10).json()["refs"]]
    assert "feature" in names, names
    assert "firefox-made" in [w["name"] for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"]]


def test_console_signs_in_through_the_identity_provider_in_firefox(idp):
    admin = idp.token()
    floe = signing_in_floe(idp, admin)
    try:
        grant(floe, admin, "warehouse", warehouse_id(floe, admin), "user:idp~carol", "select")
        firefox_walk("sign-in", FLOE_BASE=floe.base)
    finally:
        floe.stop()
