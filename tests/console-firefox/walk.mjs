// Walks Floe's console in Firefox (Debian's firefox-esr, driven through puppeteer-core over
// WebDriver BiDi), the way tests/engines/test_console.py walks it in Chromium. Run by that suite:
//
//   node walk.mjs browse   (FLOE_BASE, FLOE_WAREHOUSE: a warehouse with sales.orders on main
//                           and a branch `dev` holding one more append)
//   node walk.mjs sign-in  (FLOE_BASE: a Floe with an OpenID provider for the console)
//
// Screenshots go to FLOE_SHOTS as firefox-*.png. Any step that fails, and any script error or
// policy violation the page reports, ends the walk with a non-zero exit.

import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [mode] = process.argv.slice(2);
const base = process.env.FLOE_BASE;
const shots = process.env.FLOE_SHOTS;
const firefox = process.env.FIREFOX || "/usr/bin/firefox-esr";
fs.mkdirSync(shots, { recursive: true });

const browser = await puppeteer.launch({ browser: "firefox", executablePath: firefox, headless: true });
const errors = [];
let failed = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 900 });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(20000);
  if (mode === "browse") await browse(page);
  else if (mode === "sign-in") await signIn(page);
  else throw new Error(`unknown walk ${mode}`);
  if (errors.length) throw new Error(`the page reported errors:\n${errors.join("\n")}`);
  console.log(`walk ${mode}: ok`);
} catch (e) {
  failed = true;
  console.error(`walk ${mode} failed: ${e.stack || e}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function shot(page, name) {
  const file = path.join(shots, `firefox-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

// Waits until the console has rendered the view for this hash (it sets body[data-ready]).
async function ready(page, fragment) {
  await page.waitForFunction((f) => (document.body.dataset.ready || "").startsWith(f), {}, fragment);
}

async function go(page, hash) {
  await page.goto(`${base}/ui/${hash}`);
  await ready(page, hash);
}

async function text(page, selector) {
  return page.$eval(selector, (e) => e.innerText);
}

// Clicks the element matching `selector` whose text is `label`.
async function clickText(page, selector, label) {
  const handle = await page.waitForSelector(`${selector} ::-p-text(${label})`);
  await handle.click();
}

async function browse(page) {
  const wh = process.env.FLOE_WAREHOUSE;
  // Warehouses, and one made through the form.
  await go(page, "#/");
  check((await text(page, "#warehouses")).includes("firefox"), "the warehouse list names the warehouse");
  await page.type("#create-warehouse input[name=name]", "firefox-made");
  await page.$eval("#create-warehouse textarea[name=profile]", (e, root) => { e.value = `{"type": "local", "root": "${root}"}`; }, process.env.FLOE_NEW_ROOT);
  await shot(page, "01-warehouses");
  await page.click("#create-warehouse button[type=submit]");
  await page.waitForSelector("#namespaces");
  check(page.url().includes("#/wh/") && !page.url().includes(wh), "a new warehouse opens after its creation");

  // The namespace tree, a table's schema and snapshots.
  await go(page, `#/wh/${wh}`);
  await page.click("#namespaces a[data-ns=sales]");
  await clickText(page, "#tabulars a", "orders");
  await page.waitForSelector("#schema");
  const schema = await text(page, "#schema");
  check(schema.includes("order_id") && schema.includes("long") && schema.includes("string"), `schema shows fields and types: ${schema}`);
  const snapshots = await page.$$eval("#snapshots tbody tr", (rows) => rows.map((r) => r.innerText));
  check(snapshots.length === 1 && snapshots[0].includes("append"), `one append snapshot: ${snapshots}`);
  await shot(page, "02-table");

  // Branches: one made in the console, the diff of main and dev, what changed, the merge.
  await go(page, `#/wh/${wh}/branches`);
  await page.type("#create-ref input[name=name]", "feature");
  await page.click("#create-ref button[type=submit]");
  await clickText(page, "#refs td a", "feature");
  await go(page, `#/wh/${wh}/branches`);
  await page.select("#diff-form select[name=from]", "main");
  await page.select("#diff-form select[name=to]", "dev");
  await page.click("#diff-form button[type=submit]");
  await page.waitForSelector("#diff-table");
  const diff = await text(page, "#diff-table");
  check(diff.includes("sales.orders") && diff.includes("changed"), `the diff names the changed table: ${diff}`);
  await clickText(page, "#diff-table button", "What changed");
  await page.waitForSelector("#diff-table tr.detail");
  const detail = await text(page, "#diff-table tr.detail");
  check(detail.includes("added (append, 2 records, 1 files)"), `the diff shows the branch's snapshot: ${detail}`);
  await shot(page, "03-diff");
  await page.select("#merge-form select[name=source]", "dev");
  await page.select("#merge-form select[name=target]", "main");
  await page.click("#merge-form button[type=submit]");
  await page.waitForSelector("#merge-result .ok");
  check((await text(page, "#merge-result")).includes("Merged"), "the merge is reported");
  await shot(page, "04-merged");

  // main has the branch's snapshot now.
  await go(page, `#/wh/${wh}/table/sales/orders`);
  const after = await page.$$eval("#snapshots tbody tr", (rows) => rows.length);
  check(after === 2, `main has two snapshots after the merge, not ${after}`);

  // The server-side search, and a result opened.
  await go(page, `#/wh/${wh}`);
  await page.type("#search", "ORD");
  await page.click("#finder button");
  await page.waitForSelector("#search-results tbody tr td a");
  const found = await page.$$eval("#search-results tbody tr", (rows) => rows.map((r) => r.innerText));
  check(found.length === 1 && found[0].includes("sales") && found[0].includes("orders"), `search finds sales.orders: ${found}`);
  await shot(page, "05-search");

  // A gateway key, shown once, then revoked.
  await go(page, `#/wh/${wh}/keys`);
  await page.type("#create-key input[name=description]", "firefox key");
  await page.click("#create-key button[type=submit]");
  await page.waitForSelector("#new-key .secret");
  const secret = await text(page, "#new-key .secret");
  const keyId = secret.split("access key id: ")[1].split(/\s/)[0];
  const secretValue = secret.split("secret: ")[1].split(/\s/)[0];
  await shot(page, "06-key");
  await page.reload();
  await ready(page, `#/wh/${wh}/keys`);
  check(!(await page.content()).includes(secretValue), "the key list never shows the secret");
  const rows = await page.$$("#keys tbody tr");
  let revoked = false;
  for (const row of rows) {
    if ((await row.evaluate((r) => r.innerText)).includes(keyId)) {
      await (await row.$("button")).click();
      revoked = true;
    }
  }
  check(revoked, "the new key is listed with a revoke button");
  await page.waitForFunction((id) => !document.querySelector("#keys").innerText.includes(id), {}, keyId);
}

async function signIn(page) {
  await page.goto(`${base}/ui/`);
  await page.waitForSelector("button[data-provider=idp]");
  await page.click("button[data-provider=idp]");
  await page.waitForSelector("input[name=login]");
  await page.type("input[name=login]", "carol");
  await page.type("input[name=password]", "any");
  await shot(page, "07-provider-login");
  await page.click("button[type=submit]");
  await clickText(page, "button[type=submit]", "Continue");
  await page.waitForSelector("#warehouses");
  check((await text(page, "#warehouses")).includes("demo"), "the signed-in user sees the warehouse");
  check(!page.url().includes("code=") && !page.url().includes("state="), "the code leaves the address");
  await page.waitForSelector("#sign-out");
  await shot(page, "08-signed-in");
  await page.click("#sign-out");
  await page.waitForSelector("button[data-provider=idp]");
}
